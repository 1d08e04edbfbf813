//! Kafka's value types: turning a setting's text into a typed value, and checking it.

use std::fmt;
use std::num::IntErrorKind;

/// A key's type, numbered as DescribeConfigs reports it (Kafka's `ConfigType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(i8)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Short = 4,
    Long = 5,
    Double = 6,
    List = 7,
    Class = 8,
    Password = 9,
}

impl ConfigType {
    /// The id on the wire (DescribeConfigs `config_type`).
    pub fn id(self) -> i8 {
        self as i8
    }
}

/// A setting's value once parsed. Kafka's int, short and long all become `Int`: the range was
/// checked against the key's type while parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Bool(bool),
    Int(i64),
    Str(String),
    List(Vec<String>),
}

impl Value {
    pub(crate) fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }

    pub(crate) fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Kafka's `ConfigDef.convertToString`: what DescribeConfigs shows.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(n) => write!(f, "{n}"),
            Value::Str(s) => f.write_str(s),
            Value::List(items) => f.write_str(&items.join(",")),
        }
    }
}

/// Splits a comma-separated list, trimming each item and dropping empty ones, so a trailing
/// comma is harmless.
pub(crate) fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Parses `text` as Kafka parses a value of type `ty` (trimmed first); on failure, the reason.
pub(crate) fn parse(ty: ConfigType, text: &str) -> Result<Value, String> {
    let text = text.trim();
    match ty {
        ConfigType::Boolean => parse_bool(text),
        ConfigType::Short => parse_int(text, i16::MIN.into(), i16::MAX.into(), "a short"),
        ConfigType::Int => parse_int(text, i32::MIN.into(), i32::MAX.into(), "an int"),
        ConfigType::Long => parse_int(text, i64::MIN, i64::MAX, "a long"),
        ConfigType::Double => match text.parse::<f64>() {
            Ok(_) => Ok(Value::Str(text.to_owned())),
            Err(_) => Err("not a number".to_owned()),
        },
        ConfigType::List => Ok(Value::List(split_list(text))),
        ConfigType::String | ConfigType::Class | ConfigType::Password => {
            Ok(Value::Str(text.to_owned()))
        }
    }
}

fn parse_bool(text: &str) -> Result<Value, String> {
    if text.eq_ignore_ascii_case("true") {
        Ok(Value::Bool(true))
    } else if text.eq_ignore_ascii_case("false") {
        Ok(Value::Bool(false))
    } else {
        Err("expected true or false".to_owned())
    }
}

/// Java's `Long.parseLong`, then a range check against the key's Java type.
fn parse_int(text: &str, min: i64, max: i64, type_name: &str) -> Result<Value, String> {
    let out_of_range = || format!("out of range for {type_name} ({min} to {max})");
    match text.parse::<i64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(Value::Int(n)),
        Ok(_) => Err(out_of_range()),
        Err(e) => match e.kind() {
            IntErrorKind::PosOverflow | IntErrorKind::NegOverflow => Err(out_of_range()),
            IntErrorKind::Empty => Err(format!("empty: expected {type_name}")),
            _ => Err(format!("not a whole number: expected {type_name}")),
        },
    }
}

/// What a key accepts beyond its type.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Check {
    /// Anything of the right type.
    Any,
    /// An integer in `min..=max`.
    Range { min: i64, max: i64 },
    /// -1 meaning "no limit", or any value from 0.
    Unlimited,
    /// A string, or every item of a non-empty list, from a fixed set. Kafka accepts `known`;
    /// runnel implements `supported`; `why` explains a known value runnel does not support.
    OneOf {
        supported: &'static [&'static str],
        known: &'static [&'static str],
        why: &'static str,
    },
    /// A key-specific rule.
    Custom(fn(&Value) -> Result<(), String>),
}

/// Kafka's `atLeast(min)`.
pub(crate) const fn at_least(min: i64) -> Check {
    Check::Range { min, max: i64::MAX }
}

impl Check {
    /// Whether this check means something for values of type `ty`; the table test holds every
    /// key to it, so `check` never meets a mismatch.
    #[cfg(test)]
    pub(crate) fn applies_to(self, ty: ConfigType) -> bool {
        match self {
            Check::Any | Check::Custom(_) => true,
            Check::Range { .. } | Check::Unlimited => {
                matches!(ty, ConfigType::Short | ConfigType::Int | ConfigType::Long)
            }
            Check::OneOf { .. } => matches!(ty, ConfigType::String | ConfigType::List),
        }
    }

    /// Checks a parsed value; on failure, the reason.
    pub(crate) fn check(self, value: &Value) -> Result<(), String> {
        match (self, value) {
            (Check::Range { min, max }, Value::Int(n)) => in_range(*n, min, max),
            (Check::Unlimited, Value::Int(n)) if *n < -1 => {
                Err("must be -1 (no limit) or at least 0".to_owned())
            }
            (
                Check::OneOf {
                    supported,
                    known,
                    why,
                },
                Value::Str(s),
            ) => one_of(s, supported, known, why),
            (
                Check::OneOf {
                    supported,
                    known,
                    why,
                },
                Value::List(items),
            ) => {
                if items.is_empty() {
                    return Err(format!("empty: expected {}", supported.join(",")));
                }
                items
                    .iter()
                    .try_for_each(|s| one_of(s, supported, known, why))
            }
            (Check::Custom(rule), value) => rule(value),
            _ => Ok(()),
        }
    }
}

fn in_range(n: i64, min: i64, max: i64) -> Result<(), String> {
    if (min..=max).contains(&n) {
        Ok(())
    } else if max == i64::MAX {
        Err(format!("must be at least {min}"))
    } else {
        Err(format!("must be between {min} and {max}"))
    }
}

fn one_of(s: &str, supported: &[&str], known: &[&str], why: &str) -> Result<(), String> {
    if supported.contains(&s) {
        Ok(())
    } else if known.contains(&s) {
        Err(why.to_owned())
    } else if supported.len() == known.len() {
        Err(format!("must be one of {}", known.join(", ")))
    } else {
        Err(format!(
            "must be one of {} (runnel supports {})",
            known.join(", "),
            supported.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_parse_as_java_does_and_are_range_checked_by_type() {
        assert_eq!(parse(ConfigType::Int, " 42 "), Ok(Value::Int(42)));
        assert_eq!(parse(ConfigType::Long, "+7"), Ok(Value::Int(7)));
        assert_eq!(parse(ConfigType::Long, "-1"), Ok(Value::Int(-1)));
        let long_max = i64::MAX.to_string();
        assert_eq!(parse(ConfigType::Long, &long_max), Ok(Value::Int(i64::MAX)));
        let err = parse(ConfigType::Int, "2147483648").unwrap_err();
        assert!(err.contains("out of range for an int"), "{err}");
        let err = parse(ConfigType::Short, "40000").unwrap_err();
        assert!(err.contains("out of range for a short"), "{err}");
        let err = parse(ConfigType::Long, "9223372036854775808").unwrap_err();
        assert!(err.contains("out of range for a long"), "{err}");
        for bad in ["1.5", "1e3", "abc", "1_000", "0x10"] {
            let err = parse(ConfigType::Int, bad).unwrap_err();
            assert!(err.contains("not a whole number"), "{bad}: {err}");
        }
        assert!(parse(ConfigType::Int, "  ").unwrap_err().contains("empty"));
    }

    #[test]
    fn booleans_ignore_case_and_nothing_else_is_a_boolean() {
        assert_eq!(parse(ConfigType::Boolean, "TRUE"), Ok(Value::Bool(true)));
        assert_eq!(
            parse(ConfigType::Boolean, " False "),
            Ok(Value::Bool(false))
        );
        for bad in ["yes", "1", "on", ""] {
            assert!(parse(ConfigType::Boolean, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lists_are_split_on_commas_and_trimmed() {
        let list = parse(ConfigType::List, " a , b,,c, ").unwrap();
        assert_eq!(list, Value::List(vec!["a".into(), "b".into(), "c".into()]));
        assert_eq!(list.to_string(), "a,b,c");
        assert_eq!(parse(ConfigType::List, ""), Ok(Value::List(vec![])));
    }

    #[test]
    fn checks_explain_what_is_wrong() {
        assert!(at_least(1).check(&Value::Int(1)).is_ok());
        assert_eq!(
            at_least(1).check(&Value::Int(0)).unwrap_err(),
            "must be at least 1"
        );
        let between = Check::Range { min: 1, max: 3 };
        assert_eq!(
            between.check(&Value::Int(4)).unwrap_err(),
            "must be between 1 and 3"
        );
        assert!(Check::Unlimited.check(&Value::Int(-1)).is_ok());
        assert!(Check::Unlimited.check(&Value::Int(0)).is_ok());
        assert!(Check::Unlimited.check(&Value::Int(-2)).is_err());
        let policy = Check::OneOf {
            supported: &["delete"],
            known: &["compact", "delete"],
            why: "no compaction",
        };
        let list = |items: &[&str]| Value::List(items.iter().map(|s| s.to_string()).collect());
        assert!(policy.check(&list(&["delete"])).is_ok());
        assert_eq!(
            policy.check(&list(&["delete", "compact"])).unwrap_err(),
            "no compaction"
        );
        assert!(
            policy
                .check(&list(&["shred"]))
                .unwrap_err()
                .contains("compact, delete")
        );
        assert!(policy.check(&list(&[])).unwrap_err().contains("empty"));
    }
}
