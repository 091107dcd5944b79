//! A strict JSON scanner over one message (RFC 8259, validated UTF-8).
//!
//! It accepts a subset of what Python reads: whatever it accepts, orjson and the stdlib `json`
//! read as the same values. Everything else is `Refuse`: the message goes, whole, to the
//! Python reference path, which reads it or says why it is invalid. Refused here: NaN and
//! Infinity, numbers that overflow a double, integers beyond 64 bits, lone surrogates, control
//! characters in strings, nesting deeper than `MAX_DEPTH`.

pub const MAX_DEPTH: u32 = 64;

#[derive(Debug)]
pub struct Refuse;
pub type R<T> = Result<T, Refuse>;

/// A string's bytes: a range of the message (no escapes) or of the arena (unescaped).
#[derive(Clone, Copy, Debug)]
pub enum S {
    In(u32, u32),
    Arena(u32, u32),
}

#[derive(Clone, Copy, Debug)]
pub enum Num {
    Int(i64),
    Float(f64),
}

/// A scalar value, or any object or array (`Nested`: a mismatch for every kind of feature).
#[derive(Clone, Copy, Debug)]
pub enum V {
    Null,
    Bool(bool),
    Num(Num),
    Str(S),
    Nested,
}

pub struct Scanner<'a> {
    pub b: &'a [u8],
    pub i: usize,
}

impl<'a> Scanner<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        Scanner { b, i: 0 }
    }

    #[inline]
    pub fn ws(&mut self) {
        while self.i < self.b.len() {
            match self.b[self.i] {
                b' ' | b'\t' | b'\n' | b'\r' => self.i += 1,
                _ => break,
            }
        }
    }

    /// The next byte after whitespace (not consumed).
    #[inline]
    pub fn peek(&mut self) -> R<u8> {
        self.ws();
        self.b.get(self.i).copied().ok_or(Refuse)
    }

    #[inline]
    pub fn eat(&mut self, c: u8) -> R<()> {
        if self.peek()? == c {
            self.i += 1;
            Ok(())
        } else {
            Err(Refuse)
        }
    }

    /// After a member or element: true at the closing `close`, false after a comma.
    #[inline]
    pub fn next_or_end(&mut self, close: u8) -> R<bool> {
        match self.peek()? {
            b',' => {
                self.i += 1;
                Ok(false)
            }
            c if c == close => {
                self.i += 1;
                Ok(true)
            }
            _ => Err(Refuse),
        }
    }

    /// At `{` or `[` (consumed): true when the container is empty (its close consumed too).
    #[inline]
    pub fn open(&mut self, open: u8, close: u8) -> R<bool> {
        self.eat(open)?;
        if self.peek()? == close {
            self.i += 1;
            return Ok(true);
        }
        Ok(false)
    }

    pub fn at_end(&mut self) -> bool {
        self.ws();
        self.i == self.b.len()
    }

    /// A string (at its opening quote, after whitespace); escapes are decoded into `arena`.
    pub fn string(&mut self, arena: &mut Vec<u8>) -> R<S> {
        self.eat(b'"')?;
        let start = self.i;
        let b = self.b;
        let mut i = self.i;
        while i < b.len() {
            let c = b[i];
            if c == b'"' {
                self.i = i + 1;
                return Ok(S::In(start as u32, i as u32));
            }
            if c == b'\\' {
                break;
            }
            if c < 0x20 {
                return Err(Refuse);
            }
            i += 1;
        }
        if i >= b.len() {
            return Err(Refuse);
        }
        let a0 = arena.len();
        arena.extend_from_slice(&b[start..i]);
        while i < b.len() {
            let c = b[i];
            match c {
                b'"' => {
                    self.i = i + 1;
                    return Ok(S::Arena(a0 as u32, arena.len() as u32));
                }
                b'\\' => {
                    let e = *b.get(i + 1).ok_or(Refuse)?;
                    i += 2;
                    match e {
                        b'"' | b'\\' | b'/' => arena.push(e),
                        b'b' => arena.push(8),
                        b'f' => arena.push(12),
                        b'n' => arena.push(b'\n'),
                        b'r' => arena.push(b'\r'),
                        b't' => arena.push(b'\t'),
                        b'u' => {
                            let hi = hex4(b, i)?;
                            i += 4;
                            let cp = if (0xD800..0xDC00).contains(&hi) {
                                if b.get(i) != Some(&b'\\') || b.get(i + 1) != Some(&b'u') {
                                    return Err(Refuse); // a lone high surrogate
                                }
                                let lo = hex4(b, i + 2)?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(Refuse);
                                }
                                i += 6;
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else if (0xDC00..0xE000).contains(&hi) {
                                return Err(Refuse); // a lone low surrogate
                            } else {
                                hi
                            };
                            let ch = char::from_u32(cp).ok_or(Refuse)?;
                            let mut buf = [0u8; 4];
                            arena.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        _ => return Err(Refuse),
                    }
                }
                c if c < 0x20 => return Err(Refuse),
                _ => {
                    arena.push(c);
                    i += 1;
                }
            }
        }
        Err(Refuse)
    }

    /// A number (after whitespace): an integer without fraction or exponent (within 64 bits),
    /// else a finite double, rounded correctly as Python's `float()` rounds.
    pub fn number(&mut self) -> R<Num> {
        let b = self.b;
        let start = self.i;
        let mut i = start;
        let neg = b.get(i) == Some(&b'-');
        if neg {
            i += 1;
        }
        let d0 = i;
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            }
            _ => return Err(Refuse),
        }
        let digits_end = i;
        let mut float = false;
        if b.get(i) == Some(&b'.') {
            float = true;
            i += 1;
            let f0 = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i == f0 {
                return Err(Refuse);
            }
        }
        if matches!(b.get(i), Some(b'e') | Some(b'E')) {
            float = true;
            i += 1;
            if matches!(b.get(i), Some(b'+') | Some(b'-')) {
                i += 1;
            }
            let e0 = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i == e0 {
                return Err(Refuse);
            }
        }
        self.i = i;
        if float {
            // ASCII digits, signs, '.', 'e': valid UTF-8
            let text = std::str::from_utf8(&b[start..i]).map_err(|_| Refuse)?;
            let v: f64 = text.parse().map_err(|_| Refuse)?;
            return if v.is_finite() { Ok(Num::Float(v)) } else { Err(Refuse) };
        }
        if digits_end - d0 > 19 {
            return Err(Refuse);
        }
        let mut acc: u64 = 0;
        for &c in &b[d0..digits_end] {
            acc = acc.checked_mul(10).ok_or(Refuse)?.checked_add((c - b'0') as u64).ok_or(Refuse)?;
        }
        if neg {
            if acc > (1u64 << 63) {
                return Err(Refuse);
            }
            Ok(Num::Int((acc as i64).wrapping_neg()))
        } else {
            if acc > i64::MAX as u64 {
                return Err(Refuse);
            }
            Ok(Num::Int(acc as i64))
        }
    }

    fn literal(&mut self, word: &[u8]) -> R<()> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(Refuse)
        }
    }

    /// A scalar, or a validated object or array read as `Nested`.
    pub fn value(&mut self, arena: &mut Vec<u8>, depth: u32) -> R<V> {
        match self.peek()? {
            b'"' => Ok(V::Str(self.string(arena)?)),
            b'n' => self.literal(b"null").map(|_| V::Null),
            b't' => self.literal(b"true").map(|_| V::Bool(true)),
            b'f' => self.literal(b"false").map(|_| V::Bool(false)),
            b'{' | b'[' => {
                let mark = arena.len();
                self.skip(arena, depth)?;
                arena.truncate(mark);
                Ok(V::Nested)
            }
            _ => Ok(V::Num(self.number()?)),
        }
    }

    /// Any value, validated and dropped.
    pub fn skip(&mut self, arena: &mut Vec<u8>, depth: u32) -> R<()> {
        if depth > MAX_DEPTH {
            return Err(Refuse);
        }
        match self.peek()? {
            b'{' => {
                if self.open(b'{', b'}')? {
                    return Ok(());
                }
                loop {
                    self.ws();
                    self.string(arena)?;
                    self.eat(b':')?;
                    self.skip(arena, depth + 1)?;
                    if self.next_or_end(b'}')? {
                        return Ok(());
                    }
                }
            }
            b'[' => {
                if self.open(b'[', b']')? {
                    return Ok(());
                }
                loop {
                    self.skip(arena, depth + 1)?;
                    if self.next_or_end(b']')? {
                        return Ok(());
                    }
                }
            }
            _ => self.value(arena, depth).map(|_| ()),
        }
    }
}

fn hex4(b: &[u8], i: usize) -> R<u32> {
    let digits = b.get(i..i + 4).ok_or(Refuse)?;
    let mut v = 0u32;
    for &c in digits {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return Err(Refuse),
        };
        v = v * 16 + d as u32;
    }
    Ok(v)
}

/// The bytes of a string found by the scanner.
#[inline]
pub fn bytes_of<'x>(s: S, message: &'x [u8], arena: &'x [u8]) -> &'x [u8] {
    match s {
        S::In(a, b) => &message[a as usize..b as usize],
        S::Arena(a, b) => &arena[a as usize..b as usize],
    }
}

/// Characters (code points) of valid UTF-8.
#[inline]
pub fn chars(b: &[u8]) -> usize {
    b.iter().filter(|&&c| (c & 0xC0) != 0x80).count()
}
