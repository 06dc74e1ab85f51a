//! The per-call cookie jar of the 202 polling cycle.
//!
//! ATS answers a queued call with `202 Accepted` and `Set-Cookie` headers whose names
//! differ between installations (`QTKN`, `CTKN`, `CID`, `SID`, `BID`, ...). The client
//! keeps `name=value` of every cookie it is given during ONE call (a later value
//! replaces an earlier one of the same name), sends them all back in one `Cookie`
//! header on each poll, and drops the jar when the call ends, so a poll token can never
//! leak into another call. Attributes (`Path`, `Expires`, ...) are ignored.

/// At most this many cookies are kept (a hostile server cannot grow the jar).
const MAX_COOKIES: usize = 32;
/// At most this many bytes of `name=value` per cookie.
const MAX_COOKIE_LEN: usize = 4096;

/// The cookies of one call, in the order first seen.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CallJar {
    cookies: Vec<(String, String)>,
}

impl CallJar {
    /// An empty jar.
    pub fn new() -> Self {
        CallJar::default()
    }

    /// Takes the `name=value` of one `Set-Cookie` header value. Returns false when the
    /// value was ignored (no name, unprintable bytes, too long, jar full).
    pub fn absorb(&mut self, set_cookie: &str) -> bool {
        let pair = set_cookie.split(';').next().unwrap_or("");
        let Some((name, value)) = pair.split_once('=') else {
            return false;
        };
        let name = name.trim();
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .map_or(value, |v| v);
        let name_ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
        let value_ok = value
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b';' && b != b',' && b != b'"' && b != b'\\');
        if !name_ok || !value_ok || name.len() + value.len() + 1 > MAX_COOKIE_LEN {
            return false;
        }
        if let Some(slot) = self.cookies.iter_mut().find(|(n, _)| n == name) {
            slot.1 = value.to_string();
            return true;
        }
        if self.cookies.len() >= MAX_COOKIES {
            return false;
        }
        self.cookies.push((name.to_string(), value.to_string()));
        true
    }

    /// The `Cookie` header value (`a=1; b=2`), or `None` when the jar is empty.
    pub fn header(&self) -> Option<String> {
        if self.cookies.is_empty() {
            return None;
        }
        let parts: Vec<String> = self
            .cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        Some(parts.join("; "))
    }

    /// Number of cookies held.
    pub fn len(&self) -> usize {
        self.cookies.len()
    }

    /// True when no cookie is held.
    pub fn is_empty(&self) -> bool {
        self.cookies.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_every_cookie_and_later_values_win() {
        let mut jar = CallJar::new();
        assert!(jar.header().is_none());
        assert!(jar.absorb("SID=s1; Path=/; HttpOnly"));
        assert!(jar.absorb("QTKN=q1"));
        assert!(jar.absorb("BID=b1; Secure"));
        assert!(jar.absorb("QTKN=q2; Max-Age=30"));
        assert_eq!(jar.header().as_deref(), Some("SID=s1; QTKN=q2; BID=b1"));
        assert_eq!(jar.len(), 3);
    }

    #[test]
    fn ignores_garbage_and_caps_the_jar() {
        let mut jar = CallJar::new();
        assert!(!jar.absorb("novalue"));
        assert!(!jar.absorb("=x"));
        assert!(!jar.absorb("a=b\r\nX-Evil: 1"));
        assert!(!jar.absorb(&format!("big={}", "x".repeat(5000))));
        assert!(jar.absorb("q=\"quoted\""));
        assert_eq!(jar.header().as_deref(), Some("q=quoted"));
        for i in 0..100 {
            jar.absorb(&format!("c{i}=v"));
        }
        assert_eq!(jar.len(), MAX_COOKIES);
    }
}
