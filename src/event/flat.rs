//! The fast path of decoding: one flat JSON object whose keys and strings
//! hold no escapes and whose values are strings, numbers without exponent,
//! `true`, `false` or `null` — the shape CRM exporters and
//! `funnelwatch generate` write. Anything else (an escape, a nested value,
//! a repeated field, malformed JSON) is left to serde_json, the reference:
//! [`scan`] then returns `None`, so the two paths can never disagree on
//! what a message means, only on how fast they read it.

use std::borrow::Cow;

use super::{Raw, Val};

struct Scanner<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    /// The next byte after whitespace, consumed.
    fn next(&mut self) -> Option<u8> {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    /// A string without escapes or control characters, its opening quote consumed.
    fn string(&mut self) -> Option<&'a str> {
        let start = self.at;
        loop {
            match self.peek()? {
                b'"' => break,
                b'\\' | 0..=0x1f => return None,
                _ => self.at += 1,
            }
        }
        self.at += 1;
        // Both ends are ASCII quotes, so the slice is on character boundaries.
        Some(&self.text[start..self.at - 1])
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
        self.at - start
    }

    /// A number without exponent, its first byte consumed, read as serde_json
    /// reads it: an integer as i64 (but `-0` as the float −0), a decimal as
    /// the nearest f64.
    fn number(&mut self) -> Option<Val<'a>> {
        let start = self.at - 1;
        let negative = self.text.as_bytes()[start] == b'-';
        let first = if negative { self.at } else { start };
        let int_digits = self.digits() + usize::from(!negative);
        let leading_zero = self.text.as_bytes().get(first) == Some(&b'0');
        if int_digits == 0 || int_digits > 18 || (leading_zero && int_digits > 1) {
            return None;
        }
        let decimal = self.peek() == Some(b'.');
        if decimal {
            self.at += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            return None;
        }
        let text = &self.text[start..self.at];
        if decimal {
            return text.parse().ok().map(Val::Num);
        }
        match text.parse().ok()? {
            0 if negative => Some(Val::Num(-0.0)),
            n => Some(Val::Int(n)),
        }
    }

    fn word(&mut self, rest: &str, v: Val<'a>) -> Option<Val<'a>> {
        self.text[self.at..].starts_with(rest).then(|| {
            self.at += rest.len();
            v
        })
    }

    fn value(&mut self) -> Option<Val<'a>> {
        match self.next()? {
            b'"' => self.string().map(|s| Val::Str(Cow::Borrowed(s))),
            b'-' | b'0'..=b'9' => self.number(),
            b'n' => self.word("ull", Val::Null),
            b't' => self.word("rue", Val::Other),
            b'f' => self.word("alse", Val::Other),
            _ => None,
        }
    }
}

/// The fields of a flat object, or `None` to decode `text` with serde_json.
pub(super) fn scan(text: &str) -> Option<Raw<'_>> {
    let mut s = Scanner { text, at: 0 };
    let mut raw = Raw::default();
    // Keys of fields no event has: a repeated one is left to serde_json too.
    let mut unknown: Vec<&str> = Vec::new();
    if s.next()? != b'{' {
        return None;
    }
    let mut next = s.next()?;
    if next != b'}' {
        loop {
            if next != b'"' {
                return None;
            }
            let key = s.string()?;
            if s.next()? != b':' {
                return None;
            }
            let value = s.value()?;
            let field = match key {
                "event_id" => &mut raw.event_id,
                "deal_id" => &mut raw.deal_id,
                "type" => &mut raw.kind,
                "occurred_at" => &mut raw.occurred_at,
                "pipeline" => &mut raw.pipeline,
                "stage" => &mut raw.stage,
                "amount" => &mut raw.amount,
                "currency" => &mut raw.currency,
                "owner" => &mut raw.owner,
                "team" => &mut raw.team,
                "region" => &mut raw.region,
                "source" => &mut raw.source,
                "lost_reason" => &mut raw.lost_reason,
                "activity" => &mut raw.activity,
                "survey" => &mut raw.survey,
                "score" => &mut raw.score,
                _ if unknown.contains(&key) => return None,
                _ => {
                    unknown.push(key);
                    &mut None
                }
            };
            if field.is_some() {
                return None;
            }
            *field = Some(value);
            match s.next()? {
                b',' => next = s.next()?,
                b'}' => break,
                _ => return None,
            }
        }
    }
    s.next().is_none().then_some(raw)
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    /// The fields as validation sees them (`null` and absent alike), floats by their bits.
    fn fields(raw: Raw) -> Vec<String> {
        let Raw {
            event_id,
            deal_id,
            kind,
            occurred_at,
            pipeline,
            stage,
            amount,
            currency,
            owner,
            team,
            region,
            source,
            lost_reason,
            activity,
            survey,
            score,
        } = raw;
        [
            event_id,
            deal_id,
            kind,
            occurred_at,
            pipeline,
            stage,
            amount,
            currency,
            owner,
            team,
            region,
            source,
            lost_reason,
            activity,
            survey,
            score,
        ]
        .into_iter()
        .map(|v| match super::super::present(v) {
            Some(Val::Num(n)) => format!("Num({:#x})", n.to_bits()),
            v => format!("{v:?}"),
        })
        .collect()
    }

    /// Where the fast path answers, serde_json agrees; where serde_json
    /// rejects, the fast path does not answer.
    fn agrees(text: &str) -> bool {
        let fast = scan(text);
        let answered = fast.is_some();
        match (fast, serde_json::from_str::<Raw>(text)) {
            (Some(f), Ok(r)) => assert_eq!(fields(f), fields(r), "{text}"),
            (Some(_), Err(e)) => panic!("fast path read {text:?}, serde_json: {e}"),
            (None, _) => {}
        }
        answered
    }

    #[test]
    fn reads_the_common_shape_as_serde_json_does() {
        for text in [
            r#"{"event_id":"1-2","deal_id":"D-1","type":"deal_created","occurred_at":"2026-05-28T10:00:00.123+08:00","stage":"lead","amount":1200.50,"currency":"USD","owner":"李","team":"t","region":"华东","source":"web","pipeline":"default","lost_reason":"price","activity":"call"}"#,
            r#" { "event_id" : "e" , "deal_id":"d","type":"activity","occurred_at":1700000000000,"activity":"call","x":[] } "#,
            r#"{"event_id":"e","amount":0,"stage":null,"extra":true,"more":false,"n":-12,"f":-0.5}"#,
            r#"{"event_id":"f","type":"feedback","survey":"nps","score":9}"#,
            r#"{"score":4.0,"survey":null}"#,
            r#"{"amount":-0}"#,
            r#"{"amount":-0.0}"#,
            r#"{"amount":123456789012345678}"#,
            r#"{"amount":0.1000000000000000055511151231257827}"#,
            "{}",
            "{\"a\":1}\n",
        ] {
            let answered = agrees(text);
            assert_eq!(answered, !text.contains("[]"), "{text}");
        }
    }

    #[test]
    fn leaves_everything_else_to_serde_json() {
        for text in [
            r#"{"event_id":"a\"b"}"#,
            r#"{"ev\u0065nt_id":"x"}"#,
            r#"{"event_id":"x","event_id":"y"}"#,
            r#"{"event_id":null,"event_id":"y"}"#,
            r#"{"x":1,"event_id":"y","x":2}"#,
            r#"{"o":{"a":1}}"#,
            r#"{"amount":1e3}"#,
            r#"{"amount":01}"#,
            r#"{"amount":1.}"#,
            r#"{"amount":-}"#,
            r#"{"amount":1234567890123456789}"#,
            r#"{"a":nul}"#,
            r#"{"a":1,}"#,
            r#"{"a":1} x"#,
            "{\"a\":\"tab\there\"}",
            "[1]",
            "",
            "{",
        ] {
            assert!(scan(text).is_none(), "{text}");
        }
    }

    /// Random edits of valid events: whatever the fast path reads, it reads
    /// as serde_json does, and it reads the unedited events.
    #[test]
    fn random_edits_agree_with_serde_json() {
        let base = r#"{"event_id":"1-2","deal_id":"D-1","type":"deal_won","occurred_at":1700000000000,"amount":99.95,"owner":"o","region":"华东","x":null}"#;
        assert!(agrees(base));
        let pieces = [
            "\"",
            "\\",
            ",",
            ":",
            "{",
            "}",
            "[",
            "]",
            " ",
            "\n",
            "0",
            "-",
            ".",
            "e",
            "1",
            "n",
            "null",
            "true",
            "é",
            "\"event_id\":\"z\",",
            "\u{1}",
        ];
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let (mut answered, mut tried) = (0, 0);
        for _ in 0..20_000 {
            let mut text = base.to_string();
            for _ in 0..rng.random_range(1..4) {
                let mut at = rng.random_range(0..=text.len());
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                if rng.random_bool(0.5) {
                    text.insert_str(at, pieces[rng.random_range(0..pieces.len())]);
                } else if let Some(c) = text[at..].chars().next() {
                    text.replace_range(at..at + c.len_utf8(), "");
                }
            }
            tried += 1;
            answered += usize::from(agrees(&text));
        }
        assert!(answered > tried / 10, "the fast path read {answered} of {tried} edits");
    }
}
