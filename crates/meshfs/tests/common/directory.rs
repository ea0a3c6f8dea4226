//! Talking to a directory (seed 003) in its raw course protocol: NUL-terminated fields, one
//! operation per connection, the reply read to its end.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

/// One directory operation with NUL-terminated fields; the whole raw reply.
pub fn try_call(addr: &str, fields: &[&str]) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(15)))?;
    let mut msg = Vec::new();
    for f in fields {
        msg.extend_from_slice(f.as_bytes());
        msg.push(0);
    }
    s.write_all(&msg)?;
    s.shutdown(Shutdown::Write)?;
    let mut reply = Vec::new();
    s.read_to_end(&mut reply)?;
    Ok(reply)
}

/// [`try_call`], which must get a reply.
pub fn call(addr: &str, fields: &[&str]) -> Vec<u8> {
    try_call(addr, fields).expect("directory operation")
}

/// The fields of a successful reply after its code (a listing's count first).
pub fn fields_of(reply: &[u8]) -> Vec<String> {
    assert_eq!(reply.first(), Some(&0), "reply {reply:?}");
    let mut fields: Vec<String> = reply[1..]
        .split(|&b| b == 0)
        .map(|f| String::from_utf8(f.to_vec()).unwrap())
        .collect();
    assert_eq!(fields.pop().as_deref(), Some(""), "reply ends with a NUL");
    fields
}
