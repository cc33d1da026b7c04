//! The HTTP side end to end over loopback, with a synthetic model in place
//! of the tracer: concurrent scrapes all answered, other paths refused.

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    sync::mpsc,
};

use super::{http, tests::synthetic};

async fn get(addr: std::net::SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connects");
    s.write_all(request.as_bytes()).await.expect("sends");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("reads");
    out
}

#[test]
fn fifty_concurrent_scrapes_are_all_answered() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let addr = listener.local_addr().expect("address");
        let (tx, mut requests) = mpsc::channel::<http::ScrapeRequest>(256);
        // The loop `serve` runs, with the model replaced by a synthetic one.
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    Some(reply) = requests.recv() => { let _ = reply.send(synthetic()); }
                    Ok((stream, _)) = listener.accept() => {
                        tokio::spawn(http::handle(stream, tx.clone()));
                    }
                }
            }
        });
        let scrapes: Vec<_> = (0..50)
            .map(|_| tokio::spawn(get(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")))
            .collect();
        for s in scrapes {
            let answer = s.await.expect("joins");
            assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
            assert!(answer.contains("Content-Type: text/plain; version=0.0.4"));
            assert!(answer.contains("\nvfio_trace_faults_total{"));
        }
        let page = get(addr, "GET / HTTP/1.0\r\n\r\n").await;
        assert!(page.starts_with("HTTP/1.1 200 OK") && page.contains("/metrics"));
        let missing = get(addr, "GET /nope HTTP/1.1\r\n\r\n").await;
        assert!(missing.starts_with("HTTP/1.1 404"));
        let post = get(addr, "POST /metrics HTTP/1.1\r\n\r\n").await;
        assert!(post.starts_with("HTTP/1.1 405"));
    });
}
