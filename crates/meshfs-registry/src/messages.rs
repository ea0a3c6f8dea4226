//! What the course's interactive client prints for each result code (registry.md, "The
//! interactive client"). Scripts compare these lines byte for byte: do not reword them.

use crate::op::Operation;

/// The line printed after `op` got result `code` (a client-side failure counts as the
/// operation's error code).
pub fn message(op: Operation, code: u8) -> &'static str {
    use Operation::*;
    match (op, code) {
        (Register, 0) => "REGISTER OK",
        (Register, 1) => "USERNAME IN USE",
        (Register, _) => "REGISTER FAIL",
        (Unregister, 0) => "UNREGISTER OK",
        (Unregister, 1) => "USER DOES NOT EXIST",
        (Unregister, _) => "UNREGISTER FAIL",
        (Connect, 0) => "CONNECT OK",
        (Connect, 1) => "CONNECT FAIL, USER DOES NOT EXIST",
        (Connect, 2) => "USER ALREADY CONNECTED",
        (Connect, _) => "CONNECT FAIL",
        (Disconnect, 0) => "DISCONNECT OK",
        (Disconnect, 1) => "DISCONNECT FAIL / USER DOES NOT EXIST",
        (Disconnect, 2) => "DISCONNECT FAIL / USER NOT CONNECTED",
        (Disconnect, _) => "DISCONNECT FAIL",
        (Publish, 0) => "PUBLISH OK",
        (Publish, 1) => "PUBLISH FAIL, USER DOES NOT EXIST",
        (Publish, 2) => "PUBLISH FAIL, USER NOT CONNECTED",
        (Publish, 3) => "PUBLISH FAIL, CONTENT ALREADY PUBLISHED",
        (Publish, _) => "PUBLISH FAIL",
        (Delete, 0) => "DELETE OK",
        (Delete, 1) => "DELETE FAIL, USER DOES NOT EXIST",
        (Delete, 2) => "DELETE FAIL, USER NOT CONNECTED",
        (Delete, 3) => "DELETE FAIL, CONTENT NOT PUBLISHED",
        (Delete, _) => "DELETE FAIL",
        (ListUsers, 0) => "LIST_USERS OK",
        (ListUsers, 1) => "LIST_USERS FAIL, USER DOES NOT EXIST",
        (ListUsers, 2) => "LIST_USERS FAIL, USER NOT CONNECTED",
        (ListUsers, _) => "LIST_USERS FAIL",
        (ListContent, 0) => "LIST_CONTENT OK",
        (ListContent, 1) => "LIST_CONTENT FAIL, USER DOES NOT EXIST",
        (ListContent, 2) => "LIST_CONTENT FAIL, USER NOT CONNECTED",
        (ListContent, 3) => "LIST_CONTENT FAIL, REMOTE USER DOES NOT EXIST",
        (ListContent, _) => "LIST_CONTENT FAIL",
    }
}

pub const GET_FILE_OK: &str = "GET_FILE OK";
pub const GET_FILE_NOT_EXIST: &str = "GET_FILE FAIL / FILE NOT EXIST";
pub const GET_FILE_FAIL: &str = "GET_FILE FAIL";
pub const FINISHED: &str = "+++ FINISHED +++";

/// The usage line of each command, printed after `Syntax error. Usage: `.
pub fn usage(command: &str) -> Option<&'static str> {
    Some(match command {
        "REGISTER" => "REGISTER <userName>",
        "UNREGISTER" => "UNREGISTER <userName>",
        "CONNECT" => "CONNECT <userName>",
        "DISCONNECT" => "DISCONNECT <userName>",
        "PUBLISH" => "PUBLISH <fileName> <description>",
        "DELETE" => "DELETE <fileName>",
        "LIST_USERS" => "LIST_USERS",
        "LIST_CONTENT" => "LIST_CONTENT <userName>",
        "GET_FILE" => "GET_FILE <userName> <remote_fileName> <local_fileName>",
        "QUIT" => "QUIT",
        _ => return None,
    })
}
