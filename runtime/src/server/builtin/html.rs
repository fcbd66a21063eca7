//! The HTML around a builtin page: one self-contained document (inline CSS, no script and
//! nothing fetched: the machines these run on may have no internet).

use super::pages::PAGES;

/// `body` in a page titled `title`, with links to the other pages.
pub(super) fn page(title: &str, body: &str) -> String {
    let mut nav = String::new();
    for (path, _) in PAGES {
        nav.push_str(&format!("<a href=\"{path}\">{}</a> ", &path[1..]));
    }
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title><style>{STYLE}</style></head>\
         <body><nav><a href=\"/\">brisk</a> {nav}</nav><h1>{title}</h1>{body}</body></html>\n",
        title = escape(title)
    )
}

const STYLE: &str = "body{font-family:sans-serif;margin:1em 2em;color:#222}\
nav a{margin-right:.8em}h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.5em}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}\
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}pre{background:#f8f8f8;padding:.5em}\
svg{background:#fbfbfb;border:1px solid #ddd}";

/// `text` safe inside HTML text and attribute values.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn text_is_escaped() {
        assert_eq!(
            super::escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
