//! The part of an [`EventFilter`] the server applies to a subscription.

use kurrentdb::SubscriptionFilter;

use crate::EventFilter;

/// The server-side part of an [`EventFilter`]. The server takes one criterion (a regex
/// hides prefixes), so the full filter is always re-applied on the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ServerFilter {
    /// A regex on the event type, anchored: `^(A|B)$`.
    EventTypes(String),
    /// Stream-name prefixes `{category}-`, any of which matches.
    StreamPrefixes(Vec<String>),
    /// Every stream whose name does not start with `$`.
    NonSystemStreams,
}

impl ServerFilter {
    pub(super) fn for_filter(filter: &EventFilter) -> Self {
        if !filter.event_types.is_empty() {
            let alternatives: Vec<String> = filter.event_types.iter().map(|t| escape_regex(t)).collect();
            Self::EventTypes(format!("^({})$", alternatives.join("|")))
        } else if !filter.categories.is_empty() {
            Self::StreamPrefixes(filter.categories.iter().map(|c| format!("{c}-")).collect())
        } else {
            Self::NonSystemStreams
        }
    }

    pub(super) fn to_kurrent(&self) -> SubscriptionFilter {
        match self {
            Self::EventTypes(regex) => SubscriptionFilter::on_event_type().regex(regex),
            Self::StreamPrefixes(prefixes) => {
                prefixes.iter().fold(SubscriptionFilter::on_stream_name(), |f, prefix| f.add_prefix(prefix))
            }
            Self::NonSystemStreams => SubscriptionFilter::on_stream_name().exclude_system_events(),
        }
    }
}

/// `text` as a literal in a .NET regex (the server's engine): the characters
/// `Regex.Escape` escapes, plus the closing brackets.
fn escape_regex(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    for c in text.chars() {
        match c {
            '\\' | '*' | '+' | '?' | '|' | '{' | '}' | '[' | ']' | '(' | ')' | '^' | '$' | '.' | '#'
            | ' ' => {
                out.push('\\');
                out.push(c);
            }
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_are_filtered_on_the_server_by_an_anchored_escaped_regex() {
        let filter = EventFilter::all().event_types(["PolicyCreated", "a.b|c(d)$"]).categories(["policy"]);
        assert_eq!(
            ServerFilter::for_filter(&filter),
            ServerFilter::EventTypes(r"^(PolicyCreated|a\.b\|c\(d\)\$)$".to_owned())
        );
    }

    #[test]
    fn categories_alone_are_filtered_on_the_server_by_stream_prefix() {
        let filter = EventFilter::all().categories(["resource", "policy"]);
        assert_eq!(
            ServerFilter::for_filter(&filter),
            ServerFilter::StreamPrefixes(vec!["resource-".to_owned(), "policy-".to_owned()])
        );
    }

    #[test]
    fn no_filter_still_excludes_system_streams_on_the_server() {
        assert_eq!(ServerFilter::for_filter(&EventFilter::all()), ServerFilter::NonSystemStreams);
    }

    #[test]
    fn the_regex_escape_leaves_names_alone_and_escapes_every_metacharacter() {
        assert_eq!(escape_regex("ResourceTagsChanged"), "ResourceTagsChanged");
        assert_eq!(escape_regex(r"\*+?{}[]^$.# "), r"\\\*\+\?\{\}\[\]\^\$\.\#\ ");
    }
}
