//! Records of one model and version as columns: every feature of the model's schema, and every
//! model output (`prediction`, `prediction.<key>`), one slot per record.
//!
//! A slot has a tag (missing, null, false, true, int, float, string, nested) and 8 raw bytes
//! (the int's or the double's bits). Strings of a text feature are kept with what the text
//! summary needs of them (length, tokens, CRC-32); other strings are coded into a dictionary
//! of the batch's distinct values.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::json::{bytes_of, S, STR, V};
use crate::text;

pub const MISSING: u8 = 0; // the other tags: json.rs

pub const TEXT: u8 = 2; // the kind code of a text feature (0 numeric, 1 categorical)

#[derive(Default)]
pub struct Column {
    pub text: bool,
    pub tags: Vec<u8>,
    pub raw: Vec<u64>,
    // strings of other features: a code per slot (-1: none) into `words`
    pub codes: Vec<i32>,
    pub words: Vec<Box<[u8]>>,
    lookup: HashMap<Box<[u8]>, i32, BuildHasherDefault<Fx>>,
    // strings of a text feature
    pub buf: Vec<u8>,
    pub starts: Vec<u64>,
    pub sizes: Vec<u32>,
    pub lens: Vec<u32>,
    pub tokens: Vec<u32>,
    pub crcs: Vec<u32>,
}

impl Column {
    pub fn new(text: bool) -> Self {
        Column { text, ..Default::default() }
    }

    /// Pads the column with missing slots up to `rows` slots.
    #[inline]
    pub fn fill_to(&mut self, rows: usize) {
        while self.tags.len() < rows {
            self.push_missing();
        }
    }

    #[inline]
    fn push_missing(&mut self) {
        self.tags.push(MISSING);
        self.raw.push(0);
        if self.text {
            self.starts.push(0);
            self.sizes.push(0);
            self.lens.push(0);
            self.tokens.push(0);
            self.crcs.push(0);
        } else {
            self.codes.push(-1);
        }
    }

    /// Sets slot `row` (the column is filled to it) to `v`.
    #[inline]
    pub fn set(&mut self, row: usize, v: V, message: &[u8], arena: &[u8]) {
        self.fill_to(row + 1);
        if v.tag == STR {
            {
                let b = bytes_of(v.s, message, arena);
                if self.text {
                    let (lens, tokens) = text::measure(b);
                    self.starts[row] = self.buf.len() as u64;
                    self.sizes[row] = b.len() as u32;
                    self.lens[row] = lens;
                    self.tokens[row] = tokens;
                    self.crcs[row] = crc32fast::hash(b);
                    self.buf.extend_from_slice(b);
                } else {
                    self.codes[row] = self.code(b);
                }
            }
        }
        self.tags[row] = v.tag;
        self.raw[row] = v.bits;
    }

    #[inline]
    fn code(&mut self, b: &[u8]) -> i32 {
        if let Some(&c) = self.lookup.get(b) {
            return c;
        }
        let c = self.words.len() as i32;
        self.words.push(b.into());
        self.lookup.insert(b.into(), c);
        c
    }
}

/// FxHash (rustc's): fast on short strings; the maps it serves live for one batch.
#[derive(Default)]
pub struct Fx(u64);

impl Hasher for Fx {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().unwrap()));
        }
        let mut last = 0u64;
        for (k, &b) in chunks.remainder().iter().enumerate() {
            last |= (b as u64) << (8 * k);
        }
        self.add(last);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

impl Fx {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

/// A model's names: features (column index by name) and outputs (`prediction...`).
pub struct Schema {
    pub model: String,
    pub names: Vec<String>,
    pub text: Vec<bool>,
    pub features: HashMap<Box<[u8]>, usize>,
    pub outputs: HashMap<Box<[u8]>, usize>,
}

impl Schema {
    pub fn new(model: String, names: Vec<(String, u8)>) -> Self {
        let mut s = Schema { model, names: Vec::new(), text: Vec::new(), features: HashMap::new(),
                             outputs: HashMap::new() };
        for (name, kind) in names {
            let j = s.names.len();
            let key: Box<[u8]> = name.as_bytes().into();
            if name == "prediction" || name.starts_with("prediction.") {
                s.outputs.insert(key, j);
            } else {
                s.features.insert(key, j);
            }
            s.text.push(kind == TEXT);
            s.names.push(name);
        }
        s
    }
}

pub const MAX_EXTRA_OUTPUTS: usize = 64;

/// The columns of one (model, version); outputs the schema does not name are added as seen.
pub struct Group {
    pub schema: usize,
    pub version: VersionKey,
    pub ts: Vec<f64>,
    pub index: Vec<i64>,
    pub columns: Vec<Column>,
    pub extra_names: Vec<Box<[u8]>>,
    extra: HashMap<Box<[u8]>, usize>,
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum VersionKey {
    Str(Box<[u8]>),
    Int(i64),
    Float(u64),
}

impl Group {
    pub fn new(schema: usize, version: VersionKey, s: &Schema) -> Self {
        Group { schema, version, ts: Vec::new(), index: Vec::new(),
                columns: s.text.iter().map(|&t| Column::new(t)).collect(),
                extra_names: Vec::new(), extra: HashMap::new() }
    }

    /// The column of an output the schema does not name (None: too many such names).
    pub fn extra_column(&mut self, name: &[u8], base: usize) -> Option<usize> {
        if let Some(&j) = self.extra.get(name) {
            return Some(j);
        }
        if self.extra_names.len() >= MAX_EXTRA_OUTPUTS {
            return None;
        }
        let j = base + self.extra_names.len();
        self.extra.insert(name.into(), j);
        self.extra_names.push(name.into());
        self.columns.push(Column::new(false));
        Some(j)
    }

    pub fn has_extra(&self, name: &[u8]) -> bool {
        self.extra.contains_key(name)
    }

    pub fn extra_count(&self) -> usize {
        self.extra_names.len()
    }

    /// A new row, every column missing in it until `set`.
    pub fn push_row(&mut self, ts: f64, index: i64) {
        self.ts.push(ts);
        self.index.push(index);
    }

    /// Sets the last row's value of `column`.
    #[inline]
    pub fn set(&mut self, column: usize, v: V, message: &[u8], arena: &[u8]) {
        let row = self.ts.len() - 1;
        self.columns[column].set(row, v, message, arena);
    }

    /// Every column filled to the group's rows (after the last record).
    pub fn finish(&mut self) {
        let rows = self.ts.len();
        for c in &mut self.columns {
            c.fill_to(rows);
        }
    }

    pub fn name_bytes<'a>(&'a self, s: &'a Schema, j: usize) -> &'a [u8] {
        if j < s.names.len() {
            s.names[j].as_bytes()
        } else {
            &self.extra_names[j - s.names.len()]
        }
    }
}

pub fn version_key(v: crate::record::Version, message: &[u8], arena: &[u8]) -> VersionKey {
    match v {
        crate::record::Version::Str(s) => VersionKey::Str(bytes_of(s, message, arena).into()),
        crate::record::Version::Int(i) => VersionKey::Int(i),
        crate::record::Version::Float(f) => VersionKey::Float(f.to_bits()),
    }
}

#[allow(dead_code)]
pub fn s_bytes<'x>(s: S, message: &'x [u8], arena: &'x [u8]) -> &'x [u8] {
    bytes_of(s, message, arena)
}
