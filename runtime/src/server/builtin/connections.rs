//! `/connections`: the server's open connections and every connection the process's channels
//! keep (brpc's `/connections`): each one's remote and local address, protocol, TLS, bytes and
//! messages in and out over the last second and since it opened, bytes queued and not yet
//! written, and age.

use std::fmt::Write;
use std::time::Duration;

use super::html::escape;
use crate::server::state::Shared;
use crate::transport::sockets::{open_sockets, Side, SocketView};

/// The columns, as the text and HTML tables head them.
const COLUMNS: [&str; 14] = [
    "remote",
    "local",
    "protocol",
    "tls",
    "in_bytes/s",
    "in_msgs/s",
    "out_bytes/s",
    "out_msgs/s",
    "in_bytes",
    "in_msgs",
    "out_bytes",
    "out_msgs",
    "unwritten",
    "age",
];

/// The server's connections (those accepted on its ports) and the process's client ones.
fn listed(shared: &Shared) -> (Vec<SocketView>, Vec<SocketView>) {
    let ports = [
        Some(shared.local_addr.port()),
        shared.internal_addr.map(|addr| addr.port()),
    ];
    open_sockets()
        .into_iter()
        .filter(|s| s.side == Side::Client || ports.contains(&Some(s.local.port())))
        .partition(|s| s.side == Side::Server)
}

fn age(age: Duration) -> String {
    let secs = age.as_secs();
    match secs {
        0..60 => format!("{}.{:01}s", secs, age.subsec_millis() / 100),
        60..3600 => format!("{}m{}s", secs / 60, secs % 60),
        _ => format!("{}h{}m", secs / 3600, secs / 60 % 60),
    }
}

fn cells(socket: &SocketView) -> [String; 14] {
    let [bytes_in, bytes_out, messages_in, messages_out] = socket.totals;
    let [rate_bytes_in, rate_bytes_out, rate_messages_in, rate_messages_out] = socket.per_second;
    [
        socket.remote.to_string(),
        socket.local.to_string(),
        socket.protocol.clone(),
        if socket.tls { "yes" } else { "no" }.to_owned(),
        rate_bytes_in.to_string(),
        rate_messages_in.to_string(),
        rate_bytes_out.to_string(),
        rate_messages_out.to_string(),
        bytes_in.to_string(),
        messages_in.to_string(),
        bytes_out.to_string(),
        messages_out.to_string(),
        socket
            .unwritten
            .map_or_else(|| "-".to_owned(), |n| n.to_string()),
        age(socket.age),
    ]
}

pub(super) fn text(shared: &Shared) -> String {
    let (server, client) = listed(shared);
    let mut out = String::new();
    for (title, sockets) in [("server", &server), ("client", &client)] {
        let _ = writeln!(out, "{title} connections: {}", sockets.len());
        let rows: Vec<[String; 14]> = sockets.iter().map(cells).collect();
        let widths: Vec<usize> = (0..COLUMNS.len())
            .map(|i| {
                rows.iter()
                    .map(|row| row[i].len())
                    .chain([COLUMNS[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: &[&str]| -> String {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            padded.join(" | ").trim_end().to_owned()
        };
        let _ = writeln!(out, "{}", line(&COLUMNS));
        for row in &rows {
            let row: Vec<&str> = row.iter().map(String::as_str).collect();
            let _ = writeln!(out, "{}", line(&row));
        }
        out.push('\n');
    }
    out
}

pub(super) fn html(shared: &Shared) -> String {
    let (server, client) = listed(shared);
    let mut out = String::new();
    for (title, id, sockets) in [
        ("Server connections", "server-connections", &server),
        ("Client connections", "client-connections", &client),
    ] {
        let _ = write!(
            out,
            "<h2>{title}: {}</h2><table id=\"{id}\"><tr>",
            sockets.len()
        );
        for column in COLUMNS {
            let _ = write!(out, "<th>{column}</th>");
        }
        out.push_str("</tr>");
        for socket in sockets {
            out.push_str("<tr>");
            for cell in cells(socket) {
                let _ = write!(out, "<td>{}</td>", escape(&cell));
            }
            out.push_str("</tr>");
        }
        out.push_str("</table>");
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn ages_read_as_people_say_them() {
        use std::time::Duration;
        assert_eq!(super::age(Duration::from_millis(2_345)), "2.3s");
        assert_eq!(super::age(Duration::from_secs(125)), "2m5s");
        assert_eq!(super::age(Duration::from_secs(7_380)), "2h3m");
    }
}
