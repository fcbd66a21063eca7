//! `/vars`: every exposed metric, `name : value` as brpc prints them.

use super::html::escape;
use crate::metrics;

/// The metrics `filter` matches, one `name : value` a line.
pub(super) fn text(filter: &str) -> String {
    let mut out = String::new();
    for (name, value) in metrics::describe(filter) {
        out.push_str(&name);
        out.push_str(" : ");
        out.push_str(&value);
        out.push('\n');
    }
    out
}

/// The same as a table, each name linking to its own page.
pub(super) fn html(filter: &str) -> String {
    let mut out = String::from("<table><tr><th>name</th><th>value</th></tr>");
    for (name, value) in metrics::describe(filter) {
        let name = escape(&name);
        out.push_str(&format!(
            "<tr><td><a href=\"/vars/{name}\">{name}</a></td><td>{}</td></tr>",
            escape(&value)
        ));
    }
    out.push_str("</table>");
    out
}
