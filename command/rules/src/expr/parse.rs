//! Parser for ARM template expressions: `[concat('tags[', parameters('tagName'), ']')]`.
//!
//! Grammar: `expr := primary ( '.' ident | '[' expr ']' )*`,
//! `primary := 'string' | number | ident '(' [expr (',' expr)*] ')' | true | false | null`.
//! Strings use single quotes, a doubled quote escapes one.

/// Deepest nesting accepted; Azure's own limit is 64 nested functions.
const MAX_DEPTH: usize = 64;

/// An expression as written, before functions are resolved.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RawExpr {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
    Call(String, Vec<RawExpr>),
    Property(Box<RawExpr>, String),
    Index(Box<RawExpr>, Box<RawExpr>),
}

/// Whether a JSON string is an expression (`[…]`, but not the `[[` escape).
pub(crate) fn is_expression(text: &str) -> bool {
    text.starts_with('[') && text.ends_with(']') && !text.starts_with("[[")
}

/// Parses the inside of `[…]`.
pub(crate) fn parse(text: &str) -> Result<RawExpr, String> {
    let inner = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .ok_or_else(|| "an expression must be enclosed in '[' and ']'".to_owned())?;
    let mut parser = Parser { chars: inner.chars().collect(), at: 0, depth: 0 };
    let expr = parser.expr()?;
    parser.skip_space();
    if parser.at < parser.chars.len() {
        return Err(format!(
            "unexpected '{}' at position {} of the expression",
            parser.chars.get(parser.at).copied().unwrap_or(' '),
            parser.at + 1
        ));
    }
    Ok(expr)
}

struct Parser {
    chars: Vec<char>,
    at: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.at += 1;
        }
    }

    fn expect(&mut self, wanted: char) -> Result<(), String> {
        self.skip_space();
        match self.peek() {
            Some(c) if c == wanted => {
                self.at += 1;
                Ok(())
            }
            Some(c) => Err(format!("expected '{wanted}' but found '{c}' at position {}", self.at + 1)),
            None => Err(format!("expected '{wanted}' but the expression ended")),
        }
    }

    fn expr(&mut self) -> Result<RawExpr, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("expression nested deeper than {MAX_DEPTH} levels"));
        }
        let mut expr = self.primary()?;
        loop {
            self.skip_space();
            match self.peek() {
                Some('.') => {
                    self.at += 1;
                    self.skip_space();
                    let name = self.ident();
                    if name.is_empty() {
                        return Err(format!("expected a property name at position {}", self.at + 1));
                    }
                    expr = RawExpr::Property(Box::new(expr), name);
                }
                Some('[') => {
                    self.at += 1;
                    let index = self.expr()?;
                    self.expect(']')?;
                    expr = RawExpr::Index(Box::new(expr), Box::new(index));
                }
                _ => break,
            }
        }
        self.depth -= 1;
        Ok(expr)
    }

    fn primary(&mut self) -> Result<RawExpr, String> {
        self.skip_space();
        match self.peek() {
            Some('\'') => self.string(),
            Some(c) if c.is_ascii_digit() || c == '-' => self.number(),
            Some(c) if c.is_alphabetic() || c == '_' => {
                let name = self.ident();
                self.skip_space();
                if self.peek() == Some('(') {
                    self.at += 1;
                    let args = self.args()?;
                    return Ok(RawExpr::Call(name, args));
                }
                match name.to_ascii_lowercase().as_str() {
                    "true" => Ok(RawExpr::Bool(true)),
                    "false" => Ok(RawExpr::Bool(false)),
                    "null" => Ok(RawExpr::Null),
                    _ => Err(format!("'{name}' must be called as a function")),
                }
            }
            Some(c) => Err(format!("unexpected '{c}' at position {}", self.at + 1)),
            None => Err("the expression is empty where a value was expected".to_owned()),
        }
    }

    fn args(&mut self) -> Result<Vec<RawExpr>, String> {
        let mut args = Vec::new();
        self.skip_space();
        if self.peek() == Some(')') {
            self.at += 1;
            return Ok(args);
        }
        loop {
            args.push(self.expr()?);
            self.skip_space();
            match self.peek() {
                Some(',') => self.at += 1,
                Some(')') => {
                    self.at += 1;
                    return Ok(args);
                }
                Some(c) => {
                    return Err(format!("expected ',' or ')' but found '{c}' at position {}", self.at + 1));
                }
                None => return Err("a function call is not closed with ')'".to_owned()),
            }
        }
    }

    fn ident(&mut self) -> String {
        let start = self.at;
        while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            self.at += 1;
        }
        self.chars.get(start..self.at).map(|s| s.iter().collect()).unwrap_or_default()
    }

    fn string(&mut self) -> Result<RawExpr, String> {
        self.at += 1; // opening quote
        let mut out = String::new();
        loop {
            match self.peek() {
                Some('\'') if self.chars.get(self.at + 1) == Some(&'\'') => {
                    out.push('\'');
                    self.at += 2;
                }
                Some('\'') => {
                    self.at += 1;
                    return Ok(RawExpr::Str(out));
                }
                Some(c) => {
                    out.push(c);
                    self.at += 1;
                }
                None => return Err("a string literal is not closed with a quote".to_owned()),
            }
        }
    }

    fn number(&mut self) -> Result<RawExpr, String> {
        let start = self.at;
        if self.peek() == Some('-') {
            self.at += 1;
        }
        while self.peek().is_some_and(|c| c.is_ascii_digit() || c == '.') {
            self.at += 1;
        }
        let text: String = self.chars.get(start..self.at).map(|s| s.iter().collect()).unwrap_or_default();
        if let Ok(int) = text.parse::<i64>() {
            return Ok(RawExpr::Int(int));
        }
        text.parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(RawExpr::Float)
            .ok_or_else(|| format!("'{text}' is not a number"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, args: Vec<RawExpr>) -> RawExpr {
        RawExpr::Call(name.into(), args)
    }

    #[test]
    fn nested_calls_strings_and_escapes_parse() {
        assert_eq!(
            parse("[concat('tags[', parameters('it''s'), ']')]"),
            Ok(call(
                "concat",
                vec![
                    RawExpr::Str("tags[".into()),
                    call("parameters", vec![RawExpr::Str("it's".into())]),
                    RawExpr::Str("]".into()),
                ]
            ))
        );
    }

    #[test]
    fn property_and_index_access_chain() {
        assert_eq!(
            parse("[resourceGroup().tags[parameters('t')]]"),
            Ok(RawExpr::Index(
                Box::new(RawExpr::Property(Box::new(call("resourceGroup", vec![])), "tags".into())),
                Box::new(call("parameters", vec![RawExpr::Str("t".into())]))
            ))
        );
    }

    #[test]
    fn numbers_and_literals_parse() {
        assert_eq!(parse("[add(-3, 1.5)]"), Ok(call("add", vec![RawExpr::Int(-3), RawExpr::Float(1.5)])));
        assert_eq!(
            parse("[if(true, null, 1)]"),
            Ok(call("if", vec![RawExpr::Bool(true), RawExpr::Null, RawExpr::Int(1)]))
        );
    }

    #[test]
    fn malformed_expressions_are_refused() {
        for bad in ["[concat('a'", "[concat('a')) ]", "['open]", "[foo]", "[]", "[a(,)]"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = format!("[{}1{}]", "not(".repeat(200), ")".repeat(200));
        assert!(parse(&deep).is_err());
    }

    #[test]
    fn double_bracket_is_a_literal_not_an_expression() {
        assert!(!is_expression("[[literal]"));
        assert!(is_expression("[field('name')]"));
        assert!(!is_expression("plain"));
    }
}
