//! A minimal HTTP/1.1 server for GET and HEAD: `/metrics` and a landing page
//! at `/`. One request per connection (`Connection: close`), a bounded
//! request head and a read timeout, which is all a Prometheus scrape needs.

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
    sync::{mpsc, oneshot},
};

use super::{metrics, scrape::Scrape};

/// A request for the current scrape, answered by the loop that owns the model.
pub type ScrapeRequest = oneshot::Sender<Scrape>;

/// The largest request head read; a scrape's is a few hundred bytes.
const MAX_HEAD: usize = 16 << 10;
/// How long a client may take to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Metrics,
    Landing,
    NotFound,
    MethodNotAllowed,
    BadRequest,
}

/// Routes a request head; the bool is true for HEAD (headers only).
#[must_use]
pub fn route(head: &str) -> (Route, bool) {
    let mut parts = head.lines().next().unwrap_or("").split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return (Route::BadRequest, false);
    };
    if !version.starts_with("HTTP/1.") {
        return (Route::BadRequest, false);
    }
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        return (Route::MethodNotAllowed, false);
    }
    // The query string (`?name[]=...` from some clients) does not change the answer.
    let path = target.split('?').next().unwrap_or(target);
    let route = match path {
        "/metrics" => Route::Metrics,
        "/" => Route::Landing,
        _ => Route::NotFound,
    };
    (route, head_only)
}

/// A whole response.
#[must_use]
pub fn response(status: &str, content_type: &str, body: &str, head_only: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

/// The landing page.
#[must_use]
pub fn landing() -> String {
    format!(
        "<!doctype html>\n<html><head><title>vfio-trace exporter</title></head><body>\n\
         <h1>vfio-trace exporter</h1>\n\
         <p>Version {}. Faults, zaps and lock waits of VFIO device BARs, traced with eBPF.</p>\n\
         <p><a href=\"/metrics\">Metrics</a></p>\n</body></html>\n",
        metrics::VERSION
    )
}

/// Reads up to the end of the request head.
async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && !buf.windows(2).any(|w| w == b"\n\n") {
        if buf.len() >= MAX_HEAD {
            return None;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8(buf).ok()
}

/// Answers one connection.
pub async fn handle(mut stream: TcpStream, scrapes: mpsc::Sender<ScrapeRequest>) {
    let head = tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream))
        .await
        .ok()
        .flatten();
    let (route, head_only) = head.as_deref().map_or((Route::BadRequest, false), route);
    let reply = match route {
        Route::Metrics => metrics_response(&scrapes, head_only).await,
        Route::Landing => response("200 OK", "text/html; charset=utf-8", &landing(), head_only),
        Route::NotFound => response("404 Not Found", "text/plain", "not found\n", head_only),
        Route::MethodNotAllowed => response(
            "405 Method Not Allowed",
            "text/plain",
            "GET or HEAD only\n",
            false,
        ),
        Route::BadRequest => response("400 Bad Request", "text/plain", "bad request\n", false),
    };
    // A client that left early needs no answer.
    let _ = stream.write_all(&reply).await;
    let _ = stream.shutdown().await;
}

async fn metrics_response(scrapes: &mpsc::Sender<ScrapeRequest>, head_only: bool) -> Vec<u8> {
    let unavailable = |why: &str| {
        response(
            "503 Service Unavailable",
            "text/plain",
            &format!("{why}\n"),
            head_only,
        )
    };
    let (tx, rx) = oneshot::channel();
    if scrapes.send(tx).await.is_err() {
        return unavailable("the tracer is stopping");
    }
    let Ok(scrape) = rx.await else {
        return unavailable("the tracer is stopping");
    };
    match metrics::render(scrape) {
        Ok(text) => response("200 OK", metrics::CONTENT_TYPE, &text, head_only),
        Err(e) => response(
            "500 Internal Server Error",
            "text/plain",
            &format!("{e}\n"),
            head_only,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_get_and_head_of_two_paths() {
        let r = |s: &str| route(s);
        assert_eq!(
            r("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            (Route::Metrics, false)
        );
        assert_eq!(r("HEAD /metrics HTTP/1.0\r\n\r\n"), (Route::Metrics, true));
        assert_eq!(
            r("GET /metrics?x=1 HTTP/1.1\r\n\r\n"),
            (Route::Metrics, false)
        );
        assert_eq!(r("GET / HTTP/1.1\r\n\r\n"), (Route::Landing, false));
        assert_eq!(r("GET /other HTTP/1.1\r\n\r\n"), (Route::NotFound, false));
        assert_eq!(
            r("POST /metrics HTTP/1.1\r\n\r\n"),
            (Route::MethodNotAllowed, false)
        );
        assert_eq!(r("GET /metrics SPDY/3\r\n\r\n"), (Route::BadRequest, false));
        assert_eq!(r(""), (Route::BadRequest, false));
    }

    #[test]
    fn responses_say_their_length_and_close() {
        let text = String::from_utf8(response("200 OK", "text/plain", "abc", false)).expect("utf8");
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\
             Connection: close\r\n\r\nabc"
        );
        let head = response("200 OK", "text/plain", "abc", true);
        assert!(String::from_utf8(head).expect("utf8").ends_with("\r\n\r\n"));
        assert!(landing().contains("href=\"/metrics\""));
    }
}
