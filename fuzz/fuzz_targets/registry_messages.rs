//! Whole directory-protocol messages: a request as the directory server reads it (operation,
//! optional date, fields), and a peer's `GET_FILE` reply header as the client reads it (one
//! code byte, then the size). Any bytes give a message or a clean error, never a panic or an
//! unbounded read; fields the sender side builds read back unchanged.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use meshfs_registry::op::Request;
use meshfs_registry::peer::code;
use meshfs_registry::wire::{FieldReader, is_date, parse_number, push_field};

fuzz_target!(|data: &[u8]| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    rt.block_on(async {
        // Directory server: up to 8 requests on one connection.
        let mut reader = FieldReader::new(data, Duration::from_secs(1));
        for _ in 0..8 {
            match Request::read(&mut reader).await {
                Ok(req) => {
                    assert_eq!(req.args.len(), req.op.arg_count());
                    if let Some(d) = &req.date {
                        assert!(is_date(d));
                    }
                    // What a client would send for it reads back the same.
                    let mut again = Vec::new();
                    push_field(&mut again, req.op.name()).expect("op name");
                    if let Some(d) = &req.date {
                        push_field(&mut again, d).expect("date");
                    }
                    for a in &req.args {
                        push_field(&mut again, a).expect("read fields are sendable");
                    }
                    let mut back = FieldReader::new(&again[..], Duration::from_secs(1));
                    let req2 = Request::read(&mut back).await.expect("re-read");
                    assert_eq!(req2, req);
                }
                Err(e) => {
                    let _ = e.code();
                    break;
                }
            }
        }

        // Peer GET_FILE reply header, as `fetch::get_file` reads it.
        let mut reply = FieldReader::new(data, Duration::from_secs(1));
        if let Ok(c) = reply.read_code().await {
            if c == code::OK {
                if let Ok(size) = reply.read_number(u64::MAX).await {
                    let _ = size;
                }
            }
        }
    });

    if let Ok(s) = std::str::from_utf8(data) {
        if let Some(n) = parse_number(s, u64::MAX) {
            assert_eq!(
                n.to_string().trim_start_matches('0'),
                s.trim_start_matches('0')
            );
        }
    }
});
