//! SQL92 property filters, as RocketMQ 4.x brokers evaluate them (`rocketmq-filter`, taken
//! from ActiveMQ's selectors): comparisons, `BETWEEN`, `IN`, `IS [NOT] NULL`, `AND`, `OR`,
//! `NOT` over message properties, with SQL's three-valued logic (a missing property is NULL
//! and matches nothing). Properties are strings; compared with a number or boolean they are
//! converted to its type (Apache parses with `CONVERT_STRING_EXPRESSIONS` on), two strings
//! compared with `<`/`>` as doubles, and a conversion that fails makes the message not match.

use std::cmp::Ordering;

/// A parsed filter expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Property(String),
    Str(String),
    Long(i64),
    Double(f64),
    Bool(bool),
    Null,
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Compare(Box<Expr>, Op, Box<Expr>),
    IsNull(Box<Expr>, bool),
    In(String, Vec<String>, bool),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ParseError(pub String);

#[derive(Clone, Debug, PartialEq)]
enum Value {
    Str(String),
    Long(i64),
    Double(f64),
    Bool(bool),
}

/// Evaluation failed (a string that is not a number compared with one): no match.
struct EvalError;

impl Expr {
    /// True when the message with these properties passes the filter.
    pub fn matches(&self, property: &dyn Fn(&str) -> Option<String>) -> bool {
        matches!(self.truth(property), Ok(Some(true)))
    }

    fn value(&self, property: &dyn Fn(&str) -> Option<String>) -> Result<Option<Value>, EvalError> {
        Ok(match self {
            Expr::Property(name) => property(name).map(Value::Str),
            Expr::Str(s) => Some(Value::Str(s.clone())),
            Expr::Long(n) => Some(Value::Long(*n)),
            Expr::Double(d) => Some(Value::Double(*d)),
            Expr::Bool(b) => Some(Value::Bool(*b)),
            Expr::Null => None,
            other => other.truth(property)?.map(Value::Bool),
        })
    }

    fn truth(&self, property: &dyn Fn(&str) -> Option<String>) -> Result<Option<bool>, EvalError> {
        match self {
            Expr::Not(e) => Ok(e.truth(property)?.map(|b| !b)),
            Expr::And(a, b) => match a.truth(property)? {
                None => Ok(None),
                Some(false) => Ok(Some(false)),
                Some(true) => b.truth(property),
            },
            Expr::Or(a, b) => match a.truth(property)? {
                Some(true) => Ok(Some(true)),
                _ => b.truth(property),
            },
            Expr::IsNull(e, negated) => Ok(Some(e.value(property)?.is_none() != *negated)),
            Expr::In(name, list, negated) => match property(name) {
                None => Ok(None),
                Some(v) => Ok(Some(list.contains(&v) != *negated)),
            },
            Expr::Compare(a, op, b) => {
                let (Some(l), Some(r)) = (a.value(property)?, b.value(property)?) else {
                    return Ok(None);
                };
                let ordering = compare(&l, &r, !matches!(op, Op::Eq | Op::Ne))?;
                Ok(Some(match op {
                    Op::Eq => ordering == Some(Ordering::Equal),
                    Op::Ne => ordering != Some(Ordering::Equal),
                    Op::Lt => ordering == Some(Ordering::Less),
                    Op::Le => matches!(ordering, Some(Ordering::Less | Ordering::Equal)),
                    Op::Gt => ordering == Some(Ordering::Greater),
                    Op::Ge => matches!(ordering, Some(Ordering::Greater | Ordering::Equal)),
                }))
            }
            Expr::Bool(b) => Ok(Some(*b)),
            Expr::Property(_) | Expr::Str(_) | Expr::Long(_) | Expr::Double(_) | Expr::Null => {
                match self.value(property)? {
                    Some(Value::Bool(b)) => Ok(Some(b)),
                    Some(Value::Str(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
                    Some(_) => Ok(Some(false)),
                    None => Ok(None),
                }
            }
        }
    }
}

/// `ComparisonExpression.__compare` with string conversion on; `None` when the types do not
/// compare (Apache's -1, which no operator but `<>` accepts).
fn compare(l: &Value, r: &Value, ordering_op: bool) -> Result<Option<Ordering>, EvalError> {
    use Value::*;
    let parse_long = |s: &str| s.trim().parse::<i64>().map_err(|_| EvalError);
    let parse_double = |s: &str| s.trim().parse::<f64>().map_err(|_| EvalError);
    let parse_bool = |s: &str| s.eq_ignore_ascii_case("true");
    Ok(match (l, r) {
        (Str(a), Str(b)) if ordering_op => parse_double(a)?.partial_cmp(&parse_double(b)?),
        (Str(a), Str(b)) => Some(a.cmp(b)),
        (Long(a), Long(b)) => Some(a.cmp(b)),
        (Double(a), Double(b)) => a.partial_cmp(b),
        (Long(a), Double(b)) => (*a as f64).partial_cmp(b),
        (Double(a), Long(b)) => a.partial_cmp(&(*b as f64)),
        (Bool(a), Bool(b)) => Some(a.cmp(b)),
        (Str(a), Long(b)) => Some(parse_long(a)?.cmp(b)),
        (Long(a), Str(b)) => Some(a.cmp(&parse_long(b)?)),
        (Str(a), Double(b)) => parse_double(a)?.partial_cmp(b),
        (Double(a), Str(b)) => a.partial_cmp(&parse_double(b)?),
        (Str(a), Bool(b)) => Some(parse_bool(a).cmp(b)),
        (Bool(a), Str(b)) => Some(a.cmp(&parse_bool(b))),
        _ => None,
    })
}

// ---- parsing --------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Long(i64),
    Double(f64),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

fn tokens(src: &str) -> Result<Vec<Token>, ParseError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Token::LParen);
                i += 1;
            }
            ')' => {
                out.push(Token::RParen);
                i += 1;
            }
            ',' => {
                out.push(Token::Comma);
                i += 1;
            }
            '\'' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(ParseError("unterminated string literal".into())),
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            s.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(ch) => {
                            s.push(*ch);
                            i += 1;
                        }
                    }
                }
                out.push(Token::Str(s));
            }
            '=' => {
                out.push(Token::Op("="));
                i += 1;
            }
            '<' | '>' => {
                let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
                let op = match two.as_str() {
                    "<>" => "<>",
                    "<=" => "<=",
                    ">=" => ">=",
                    _ if c == '<' => "<",
                    _ => ">",
                };
                i += op.len();
                out.push(Token::Op(op));
            }
            '-' | '+' => {
                out.push(Token::Op(if c == '-' { "-" } else { "+" }));
                i += 1;
            }
            c if c.is_ascii_digit() || c == '.' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric()
                        || chars[i] == '.'
                        || ((chars[i] == '-' || chars[i] == '+')
                            && matches!(chars[i - 1], 'e' | 'E')))
                {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                out.push(number(&text)?);
            }
            c if c.is_alphabetic() || c == '_' || c == '$' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '$' | '.'))
                {
                    i += 1;
                }
                out.push(Token::Ident(chars[start..i].iter().collect()));
            }
            other => return Err(ParseError(format!("unexpected character '{other}'"))),
        }
    }
    Ok(out)
}

fn number(text: &str) -> Result<Token, ParseError> {
    let t = text.trim_end_matches(['l', 'L']);
    if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        return i64::from_str_radix(hex, 16)
            .map(Token::Long)
            .map_err(|_| ParseError(format!("bad number {text}")));
    }
    if let Ok(n) = t.parse::<i64>() {
        return Ok(Token::Long(n));
    }
    t.trim_end_matches(['d', 'D', 'f', 'F'])
        .parse::<f64>()
        .map(Token::Double)
        .map_err(|_| ParseError(format!("bad number {text}")))
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    /// How many parentheses, `NOT`s and signs the parser is inside.
    nesting: usize,
}

/// The deepest an expression may nest: parentheses, `NOT`, signs and each `AND`/`OR` of a
/// chain add a level. Parsing, evaluating, cloning and dropping an expression recurse once per
/// level on the connection's stack, and 100,000 `(` in a pull's subscription overflowed a
/// worker's stack, which aborts the process (Apache's parser, on a JVM thread, throws and refuses the
/// subscription). Real filters nest a few levels.
pub const MAX_DEPTH: usize = 100;

/// Parses a SQL92 filter expression.
pub fn parse(src: &str) -> Result<Expr, ParseError> {
    let mut p = Parser {
        tokens: tokens(src)?,
        at: 0,
        nesting: 0,
    };
    if p.tokens.is_empty() {
        return Err(ParseError("the expression is empty".into()));
    }
    let (e, _) = p.or()?;
    if p.at != p.tokens.len() {
        return Err(ParseError(format!(
            "unexpected {:?} after the expression",
            p.tokens[p.at]
        )));
    }
    Ok(e)
}

/// A parsed part and the depth of its tree.
type Parsed = Result<(Expr, usize), ParseError>;

fn too_deep() -> ParseError {
    ParseError(format!(
        "the expression nests deeper than {MAX_DEPTH} levels"
    ))
}

/// One level above a part `depth` deep.
fn above(depth: usize) -> Result<usize, ParseError> {
    if depth >= MAX_DEPTH {
        return Err(too_deep());
    }
    Ok(depth + 1)
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn keyword(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some(Token::Ident(w)) if w.eq_ignore_ascii_case(word)) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, t: Token) -> Result<(), ParseError> {
        if self.peek() == Some(&t) {
            self.at += 1;
            Ok(())
        } else {
            Err(ParseError(format!(
                "expected {t:?}, found {:?}",
                self.peek()
            )))
        }
    }

    /// Parses `inner` one recursion level down; refuses past [`MAX_DEPTH`] before recursing.
    fn nested(&mut self, inner: impl FnOnce(&mut Parser) -> Parsed) -> Parsed {
        if self.nesting >= MAX_DEPTH {
            return Err(too_deep());
        }
        self.nesting += 1;
        let parsed = inner(self);
        self.nesting -= 1;
        parsed
    }

    fn or(&mut self) -> Parsed {
        let (mut e, mut depth) = self.and()?;
        while self.keyword("OR") {
            let (right, right_depth) = self.and()?;
            depth = above(depth.max(right_depth))?;
            e = Expr::Or(Box::new(e), Box::new(right));
        }
        Ok((e, depth))
    }

    fn and(&mut self) -> Parsed {
        let (mut e, mut depth) = self.not()?;
        while self.keyword("AND") {
            let (right, right_depth) = self.not()?;
            depth = above(depth.max(right_depth))?;
            e = Expr::And(Box::new(e), Box::new(right));
        }
        Ok((e, depth))
    }

    fn not(&mut self) -> Parsed {
        if self.keyword("NOT") {
            let (e, depth) = self.nested(Parser::not)?;
            return Ok((Expr::Not(Box::new(e)), above(depth)?));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Parsed {
        let (left, left_depth) = self.primary()?;
        if self.keyword("IS") {
            let negated = self.keyword("NOT");
            if !self.keyword("NULL") {
                return Err(ParseError("expected NULL after IS".into()));
            }
            return Ok((Expr::IsNull(Box::new(left), negated), above(left_depth)?));
        }
        let negated = self.keyword("NOT");
        if self.keyword("BETWEEN") {
            let (low, low_depth) = self.primary()?;
            if !self.keyword("AND") {
                return Err(ParseError("expected AND in BETWEEN".into()));
            }
            let (high, high_depth) = self.primary()?;
            let depth = above(above(left_depth.max(low_depth).max(high_depth))?)?;
            let within = Expr::And(
                Box::new(Expr::Compare(Box::new(left.clone()), Op::Ge, Box::new(low))),
                Box::new(Expr::Compare(Box::new(left), Op::Le, Box::new(high))),
            );
            return Ok(if negated {
                (Expr::Not(Box::new(within)), above(depth)?)
            } else {
                (within, depth)
            });
        }
        if self.keyword("IN") {
            let Expr::Property(name) = left else {
                return Err(ParseError("Expected a property for In expression".into()));
            };
            self.expect(Token::LParen)?;
            let mut list = Vec::new();
            loop {
                match self.peek().cloned() {
                    Some(Token::Str(s)) => {
                        self.at += 1;
                        list.push(s);
                    }
                    other => {
                        return Err(ParseError(format!(
                            "expected a string in IN, found {other:?}"
                        )))
                    }
                }
                if self.peek() == Some(&Token::Comma) {
                    self.at += 1;
                    continue;
                }
                self.expect(Token::RParen)?;
                break;
            }
            return Ok((Expr::In(name, list, negated), 1));
        }
        if negated {
            return Err(ParseError("expected BETWEEN or IN after NOT".into()));
        }
        let op = match self.peek() {
            Some(Token::Op("=")) => Op::Eq,
            Some(Token::Op("<>")) => Op::Ne,
            Some(Token::Op("<")) => Op::Lt,
            Some(Token::Op("<=")) => Op::Le,
            Some(Token::Op(">")) => Op::Gt,
            Some(Token::Op(">=")) => Op::Ge,
            _ => return Ok((left, left_depth)),
        };
        self.at += 1;
        let (right, right_depth) = self.primary()?;
        Ok((
            Expr::Compare(Box::new(left), op, Box::new(right)),
            above(left_depth.max(right_depth))?,
        ))
    }

    fn primary(&mut self) -> Parsed {
        let leaf = |e| Ok((e, 1));
        match self.peek().cloned() {
            Some(Token::LParen) => {
                self.at += 1;
                let e = self.nested(Parser::or)?;
                self.expect(Token::RParen)?;
                Ok(e)
            }
            Some(Token::Str(s)) => {
                self.at += 1;
                leaf(Expr::Str(s))
            }
            Some(Token::Long(n)) => {
                self.at += 1;
                leaf(Expr::Long(n))
            }
            Some(Token::Double(d)) => {
                self.at += 1;
                leaf(Expr::Double(d))
            }
            Some(Token::Op("-")) => {
                self.at += 1;
                match self.nested(Parser::primary)? {
                    (Expr::Long(n), _) => leaf(Expr::Long(n.wrapping_neg())),
                    (Expr::Double(d), _) => leaf(Expr::Double(-d)),
                    _ => Err(ParseError("a minus sign needs a number".into())),
                }
            }
            Some(Token::Op("+")) => {
                self.at += 1;
                self.nested(Parser::primary)
            }
            Some(Token::Ident(w)) => {
                self.at += 1;
                leaf(match w.to_ascii_uppercase().as_str() {
                    "TRUE" => Expr::Bool(true),
                    "FALSE" => Expr::Bool(false),
                    "NULL" => Expr::Null,
                    "AND" | "OR" | "NOT" | "BETWEEN" | "IN" | "IS" => {
                        return Err(ParseError(format!("unexpected keyword {w}")))
                    }
                    _ => Expr::Property(w),
                })
            }
            other => Err(ParseError(format!("unexpected {other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(expr: &str, props: &[(&str, &str)]) -> bool {
        let e = parse(expr).unwrap();
        e.matches(&|k| {
            props
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn comparisons_convert_properties_as_apache_does() {
        assert!(eval("a > 5", &[("a", "10")]));
        assert!(!eval("a > 5", &[("a", "3")]));
        assert!(!eval("a > 5", &[("a", "ten")]));
        assert!(!eval("a > 5", &[]));
        assert!(eval("a between 0 and 3", &[("a", "3")]));
        assert!(!eval("a NOT BETWEEN 0 AND 3", &[("a", "2")]));
        assert!(eval("a = 2.5", &[("a", "2.5")]));
        assert!(eval("b = 'x'", &[("b", "x")]));
        assert!(eval("b <> 'x'", &[("b", "y")]));
        assert!(!eval("b <> 'x'", &[]));
        assert!(eval("'10' > '9'", &[]));
        assert!(eval("flag = TRUE", &[("flag", "true")]));
    }

    #[test]
    fn logic_is_three_valued() {
        assert!(eval(
            "TAGS IN ('a', 'b') AND (x IS NULL OR x = 1)",
            &[("TAGS", "b")]
        ));
        assert!(!eval("TAGS NOT IN ('a', 'b')", &[("TAGS", "b")]));
        assert!(!eval("NOT (missing > 1)", &[]));
        assert!(eval("missing > 1 OR y = 'k'", &[("y", "k")]));
        assert!(eval("z IS NOT NULL", &[("z", "")]));
        assert!(eval("n = -3", &[("n", "-3")]));
    }

    #[test]
    fn bad_expressions_are_parse_errors() {
        for bad in [
            "",
            "a >",
            "a IN (1)",
            "(a = 1",
            "a = 'x",
            "a ~ 1",
            "1 IN ('a')",
            "a NOT = 1",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    /// Parses on a thread with a tokio worker's 2 MiB stack, where subscriptions are parsed.
    fn parse_on_worker_stack(src: String) -> Result<bool, ParseError> {
        std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(move || parse(&src).map(|e| e.matches(&|_| Some("1".to_string()))))
            .expect("thread starts")
            .join()
            .expect("the parser returns")
    }

    #[test]
    fn nesting_is_refused_past_the_limit_before_it_can_overflow_the_stack() {
        let within = format!(
            "{}a = 1{}",
            "(".repeat(MAX_DEPTH - 2),
            ")".repeat(MAX_DEPTH - 2)
        );
        assert_eq!(parse_on_worker_stack(within), Ok(true));
        let too_deep = format!("{}a = 1{}", "(".repeat(200_000), ")".repeat(200_000));
        assert_eq!(parse_on_worker_stack(too_deep), Err(super::too_deep()));
        let nots = format!("{}a = 1", "NOT ".repeat(200_000));
        assert_eq!(parse_on_worker_stack(nots), Err(super::too_deep()));
        let signs = format!("a = {}1", "- ".repeat(200_000));
        assert_eq!(parse_on_worker_stack(signs), Err(super::too_deep()));
        // A chain builds a tree one level deeper per AND or OR.
        let chain = vec!["a = 1"; 200_000].join(" AND ");
        assert_eq!(parse_on_worker_stack(chain), Err(super::too_deep()));
        let short_chain = vec!["a = 1"; MAX_DEPTH / 2].join(" OR ");
        assert_eq!(parse_on_worker_stack(short_chain), Ok(true));
        assert_eq!(
            parse_on_worker_stack("a = - - 9223372036854775807".into()),
            Ok(false)
        );
    }
}
