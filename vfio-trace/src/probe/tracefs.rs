//! Tracepoint record layouts, from the `format` files of tracefs.

/// Byte offset of `field` in a tracepoint `format` text
/// (`field:void * lock_addr; offset:8; size:8; signed:0;`, tab-separated).
pub fn field_offset(format: &str, field: &str) -> Option<u32> {
    format.lines().find_map(|line| {
        let line = line.trim();
        let decl = line.strip_prefix("field:")?.split(';').next()?;
        let name = decl.rsplit([' ', '*']).next()?;
        if name != field {
            return None;
        }
        line.split(';')
            .find_map(|part| part.trim().strip_prefix("offset:")?.parse().ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEGIN: &str = "name: contention_begin\nID: 351\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\tfield:void * lock_addr;\toffset:8;\tsize:8;\tsigned:0;\n\tfield:unsigned int flags;\toffset:16;\tsize:4;\tsigned:0;\n";

    #[test]
    fn finds_fields_by_name() {
        assert_eq!(field_offset(BEGIN, "lock_addr"), Some(8));
        assert_eq!(field_offset(BEGIN, "flags"), Some(16));
        assert_eq!(field_offset(BEGIN, "common_pid"), Some(4));
        assert_eq!(field_offset(BEGIN, "ret"), None);
    }
}
