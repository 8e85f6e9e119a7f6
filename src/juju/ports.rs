//! Firewall ports: `open-port`, `close-port`, `opened-ports`.
//!
//! Opening and closing are buffered until the hook succeeds, and
//! `opened-ports` lists only committed ports. PostgreSQL only needs TCP.

use super::tool::{Invocation, ToolError};

/// Opens a TCP port: `open-port <port>/tcp`.
pub fn open_port(port: u16) -> Result<(), ToolError> {
    Invocation::new("open-port")
        .arg(format!("{port}/tcp"))
        .run()
        .map(drop)
}

/// Closes a TCP port: `close-port <port>/tcp`.
pub fn close_port(port: u16) -> Result<(), ToolError> {
    Invocation::new("close-port")
        .arg(format!("{port}/tcp"))
        .run()
        .map(drop)
}

/// Committed open ports, e.g. `5432/tcp`: `opened-ports --format=json`.
pub fn opened_ports() -> Result<Vec<String>, ToolError> {
    let ports: Option<Vec<String>> = Invocation::new("opened-ports")
        .arg("--format=json")
        .run_json()?;
    Ok(ports.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::super::tool::parse_json;

    #[test]
    fn parses_opened_ports_output() {
        let ports: Option<Vec<String>> = parse_json(r#"["5432/tcp","8000-8999/udp"]"#).unwrap();
        assert_eq!(ports.unwrap(), ["5432/tcp", "8000-8999/udp"]);
        assert!(parse_json::<Option<Vec<String>>>("null").unwrap().is_none());
    }
}
