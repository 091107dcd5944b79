//! drift_native: prediction-log messages decoded straight into typed columns per model and
//! version (monitor/ingest/native_decode.py is its Python side and says what it returns).
//!
//! Every message this cannot vouch for is refused whole and read by the Python reference path
//! (monitor/ingest/records.py): a model without a schema, a feature name the schema does not
//! know, a repeated key, a `ts` that is not a number or a common ISO 8601 form, and whatever
//! json.rs refuses. What it accepts it reads as the reference would
//! (tests/test_native_decode.py checks both on random and adversarial batches).

mod columns;
mod iso;
mod json;
mod kafka;
mod record;
mod text;

use std::collections::HashMap;

use pyo3::buffer::PyBuffer;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyFloat, PyInt, PyList, PyString, PyTuple};

use columns::{version_key, Group, Schema, VersionKey};
use json::{bytes_of, Refuse, Scanner, R};
use record::{Prediction, Rec, Version};

/// Decodes batches of messages of the models given at construction.
#[pyclass(frozen, module = "drift_native")]
struct Decoder {
    schemas: Vec<Schema>,
    by_model: HashMap<Box<[u8]>, usize>,
}

struct Batch {
    groups: Vec<Group>,
    refused: Vec<usize>,
}

/// Per-batch state: scratch space and what was learnt of each schema's name order.
struct Work {
    arena: Vec<u8>,
    recs: Vec<Rec>,
    plans: Vec<(usize, Vec<usize>)>,
    stamps: Vec<Vec<u32>>,
    order: Vec<Vec<usize>>,
    serial: u32,
    name: Vec<u8>,
    by_key: HashMap<(usize, VersionKey), usize>,
    last: usize,
}

#[pymethods]
impl Decoder {
    /// `models`: (model, [(name, kind)]) with kind 0 numeric, 1 categorical, 2 text; names
    /// include the outputs (`prediction`, `prediction.<key>`) the profiles have.
    #[new]
    fn new(models: Vec<(String, Vec<(String, u8)>)>) -> Self {
        let mut by_model = HashMap::new();
        let mut schemas = Vec::new();
        for (model, names) in models {
            by_model.insert(model.as_bytes().into(), schemas.len());
            schemas.push(Schema::new(model, names));
        }
        Decoder { schemas, by_model }
    }

    /// (groups, refused): each group (model, version, ts, index, columns), in order of first
    /// appearance, its arrays as bytes; `refused`: the positions of the messages left to the
    /// Python path.
    fn decode<'py>(&self, py: Python<'py>, messages: Vec<Bound<'py, PyBytes>>, latest: f64)
                   -> PyResult<(Bound<'py, PyList>, Vec<usize>)> {
        let slices: Vec<&[u8]> = messages.iter().map(|m| m.as_bytes()).collect();
        self.decode_slices(py, &slices, latest)
    }

    /// As `decode`, of the messages at `spans` of `buffer` (pairs of native u64: start, end;
    /// `split_lines` makes them).
    fn decode_spans<'py>(&self, py: Python<'py>, buffer: Bound<'py, PyBytes>,
                         spans: Bound<'py, PyBytes>, latest: f64)
                         -> PyResult<(Bound<'py, PyList>, Vec<usize>)> {
        let buf = buffer.as_bytes();
        let slices: Vec<&[u8]> = spans.as_bytes().chunks_exact(16)
            .map(|c| {
                let a = u64::from_ne_bytes(c[..8].try_into().unwrap()) as usize;
                let b = u64::from_ne_bytes(c[8..].try_into().unwrap()) as usize;
                buf.get(a..b).ok_or_else(|| pyo3::exceptions::PyValueError::new_err("bad span"))
            })
            .collect::<PyResult<_>>()?;
        self.decode_slices(py, &slices, latest)
    }
}

impl Decoder {
    fn decode_slices<'py>(&self, py: Python<'py>, slices: &[&[u8]], latest: f64)
                          -> PyResult<(Bound<'py, PyList>, Vec<usize>)> {
        let batch = py.allow_threads(|| self.parse(slices, latest));
        let groups = PyList::empty(py);
        for g in &batch.groups {
            groups.append(self.group_to_py(py, g)?)?;
        }
        Ok((groups, batch.refused))
    }

    fn parse(&self, messages: &[&[u8]], latest: f64) -> Batch {
        let mut w = Work {
            arena: Vec::new(),
            recs: Vec::new(),
            plans: Vec::new(),
            stamps: self.schemas.iter().map(|s| vec![0; s.names.len()]).collect(),
            order: vec![Vec::new(); self.schemas.len()],
            serial: 0,
            name: Vec::new(),
            by_key: HashMap::new(),
            last: usize::MAX,
        };
        let mut groups: Vec<Group> = Vec::new();
        let mut refused = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            if self.message(m, i, latest, &mut w, &mut groups).is_err() {
                refused.push(i);
            }
        }
        groups.iter_mut().for_each(Group::finish);
        Batch { groups, refused }
    }

    fn message(&self, m: &[u8], index: usize, latest: f64, w: &mut Work,
               groups: &mut Vec<Group>) -> R<()> {
        w.arena.clear();
        let mut sc = Scanner::new(m);
        let mut n = 0;
        if sc.peek()? == b'[' {
            if !sc.open(b'[', b']')? {
                loop {
                    if sc.peek()? != b'{' {
                        return Err(Refuse);
                    }
                    self.read_into(&mut sc, w, n, latest)?;
                    n += 1;
                    if sc.next_or_end(b']')? {
                        break;
                    }
                }
            }
        } else {
            self.read_into(&mut sc, w, 0, latest)?;
            n = 1;
        }
        if !sc.at_end() {
            return Err(Refuse);
        }
        for k in 0..n {
            self.plan(m, w, k, groups)?;
        }
        for k in 0..n {
            self.apply(m, index, w, k, groups);
        }
        Ok(())
    }

    fn read_into(&self, sc: &mut Scanner, w: &mut Work, k: usize, latest: f64) -> R<()> {
        if w.recs.len() <= k {
            w.recs.push(Rec::new());
            w.plans.push((0, Vec::new()));
        }
        record::read(sc, &mut w.arena, &mut w.recs[k], latest)
    }

    /// Every check that could refuse record `k`, before anything is written.
    fn plan(&self, m: &[u8], w: &mut Work, k: usize, groups: &[Group]) -> R<()> {
        let rec = &w.recs[k];
        let model = bytes_of(rec.model.ok_or(Refuse)?, m, &w.arena);
        let si = *self.by_model.get(model).ok_or(Refuse)?;
        let schema = &self.schemas[si];
        w.serial = w.serial.wrapping_add(1);
        if w.serial == 0 {
            w.stamps.iter_mut().for_each(|s| s.fill(0));
            w.serial = 1;
        }
        let (plan_si, cols) = &mut w.plans[k];
        *plan_si = si;
        cols.clear();
        let order = &mut w.order[si];
        let stamps = &mut w.stamps[si];
        for (pos, (s, _)) in rec.features.iter().enumerate() {
            let name = bytes_of(*s, m, &w.arena);
            let j = match order.get(pos) {
                Some(&j) if json::same(schema.names[j].as_bytes(), name) => j,
                _ => {
                    let j = *schema.features.get(name).ok_or(Refuse)?;
                    if pos < order.len() {
                        order[pos] = j;
                    } else if pos == order.len() {
                        order.push(j);
                    }
                    j
                }
            };
            if stamps[j] == w.serial {
                return Err(Refuse);
            }
            stamps[j] = w.serial;
            cols.push(j);
        }
        if let Prediction::Object(a, b) = rec.prediction {
            let outputs = &rec.outputs[a..b];
            if outputs.len() > columns::MAX_EXTRA_OUTPUTS {
                return Err(Refuse);
            }
            let group = self.find_group(m, w, si, rec.version.ok_or(Refuse)?, groups)
                .map(|g| &groups[g]);
            let mut extra_new = 0;
            for (x, (s, _)) in outputs.iter().enumerate() {
                let key = bytes_of(*s, m, &w.arena);
                if outputs[..x].iter().any(|(t, _)| bytes_of(*t, m, &w.arena) == key) {
                    return Err(Refuse);
                }
                w.name.clear();
                w.name.extend_from_slice(b"prediction.");
                w.name.extend_from_slice(key);
                if !schema.outputs.contains_key(w.name.as_slice())
                    && !group.is_some_and(|g| g.has_extra(&w.name))
                {
                    extra_new += 1;
                }
            }
            let have = group.map_or(0, |g| g.extra_count());
            if extra_new > 0 && have + extra_new > columns::MAX_EXTRA_OUTPUTS {
                return Err(Refuse);
            }
        }
        Ok(())
    }

    fn find_group(&self, m: &[u8], w: &Work, si: usize, v: Version, groups: &[Group])
                  -> Option<usize> {
        if let Some(g) = groups.get(w.last) {
            if g.schema == si && same_version(&g.version, v, m, &w.arena) {
                return Some(w.last);
            }
        }
        w.by_key.get(&(si, version_key(v, m, &w.arena))).copied()
    }

    fn apply(&self, m: &[u8], index: usize, w: &mut Work, k: usize, groups: &mut Vec<Group>) {
        let si = w.plans[k].0;
        let schema = &self.schemas[si];
        let version = w.recs[k].version.expect("planned");
        let g = match self.find_group(m, w, si, version, groups) {
            Some(g) => g,
            None => {
                let key = version_key(version, m, &w.arena);
                groups.push(Group::new(si, key.clone(), schema));
                w.by_key.insert((si, key), groups.len() - 1);
                groups.len() - 1
            }
        };
        w.last = g;
        let group = &mut groups[g];
        let rec = &w.recs[k];
        group.push_row(rec.ts, index as i64);
        for ((_, v), &j) in rec.features.iter().zip(&w.plans[k].1) {
            group.set(j, *v, m, &w.arena);
        }
        match rec.prediction {
            Prediction::Missing => {}
            Prediction::Scalar(v) => {
                let j = output_column(schema, group, b"prediction");
                group.set(j, v, m, &w.arena);
            }
            Prediction::Object(a, b) => {
                let j = output_column(schema, group, b"prediction");
                group.set(j, json::V::of(json::NESTED), m, &w.arena);
                for (s, v) in &rec.outputs[a..b] {
                    w.name.clear();
                    w.name.extend_from_slice(b"prediction.");
                    w.name.extend_from_slice(bytes_of(*s, m, &w.arena));
                    let j = output_column(schema, group, &w.name);
                    group.set(j, *v, m, &w.arena);
                }
            }
        }
    }

    fn group_to_py<'py>(&self, py: Python<'py>, g: &Group) -> PyResult<Bound<'py, PyTuple>> {
        let schema = &self.schemas[g.schema];
        let version: Bound<PyAny> = match &g.version {
            VersionKey::Str(b) => PyString::new(py, utf8(b)).into_any(),
            VersionKey::Int(i) => PyInt::new(py, *i).into_any(),
            VersionKey::Float(f) => PyFloat::new(py, f64::from_bits(*f)).into_any(),
        };
        let columns = PyList::empty(py);
        for (j, c) in g.columns.iter().enumerate() {
            let name = PyString::new(py, utf8(g.name_bytes(schema, j)));
            let strings: Bound<PyAny> = if c.text {
                (bytes(py, &c.buf), bytes(py, &c.starts), bytes(py, &c.sizes),
                 bytes(py, &c.lens), bytes(py, &c.tokens), bytes(py, &c.crcs))
                    .into_pyobject(py)?.into_any()
            } else {
                let words = PyList::empty(py);
                for w in &c.words {
                    words.append(PyString::new(py, utf8(w)))?;
                }
                (bytes(py, &c.codes), words).into_pyobject(py)?.into_any()
            };
            columns.append((name, c.text, bytes(py, &c.tags), bytes(py, &c.raw), strings))?;
        }
        (PyString::new(py, &schema.model), version, bytes(py, &g.ts), bytes(py, &g.index),
         columns).into_pyobject(py)
    }
}

fn output_column(schema: &Schema, group: &mut Group, name: &[u8]) -> usize {
    match schema.outputs.get(name) {
        Some(&j) => j,
        None => group.extra_column(name, schema.names.len()).expect("checked when planned"),
    }
}

fn same_version(key: &VersionKey, v: Version, m: &[u8], arena: &[u8]) -> bool {
    match (key, v) {
        (VersionKey::Str(a), Version::Str(s)) => **a == *bytes_of(s, m, arena),
        (VersionKey::Int(a), Version::Int(b)) => *a == b,
        (VersionKey::Float(a), Version::Float(b)) => *a == b.to_bits(),
        _ => false,
    }
}

fn utf8(b: &[u8]) -> &str {
    // every string here was validated as UTF-8 (whole messages) or encoded from a char
    std::str::from_utf8(b).expect("valid UTF-8")
}

fn bytes<'py, T: Copy>(py: Python<'py>, v: &[T]) -> Bound<'py, PyBytes> {
    let b = unsafe {
        std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v))
    };
    PyBytes::new(py, b)
}

/// The non-blank lines of `buffer` from `start`, at most `limit` of them, as (start, end) pairs
/// of native u64 (a line ends after its newline; blank: only what `bytes.strip()` strips), and
/// where reading stopped. Without `last`, the text after the last newline is left unread.
#[pyfunction]
fn split_lines<'py>(py: Python<'py>, buffer: Bound<'py, PyBytes>, start: usize, limit: usize,
                    last: bool) -> (Bound<'py, PyBytes>, usize) {
    let b = buffer.as_bytes();
    let mut spans: Vec<u64> = Vec::new();
    let mut i = start.min(b.len());
    while spans.len() < 2 * limit && i < b.len() {
        let end = match memchr::memchr(b'\n', &b[i..]) {
            Some(k) => i + k + 1,
            None if last => b.len(),
            None => break,
        };
        if b[i..end].iter().any(|c| !matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)) {
            spans.push(i as u64);
            spans.push(end as u64);
        }
        i = end;
    }
    (bytes(py, &spans), i)
}

/// A fixed-edge histogram update, `NumericSummary._histogram_update` in one call: adds each
/// finite value's bin to `counts` (len(edges) + 1 bins; the training max, `edges[-1]`, belongs
/// to the last interior bin) and returns the sums of the quanta `z` below the first edge and
/// above the last one.
#[pyfunction]
fn histogram(py: Python<'_>, edges: PyBuffer<f64>, values: PyBuffer<f64>, z: PyBuffer<i64>,
             counts: PyBuffer<i64>) -> PyResult<(i64, i64)> {
    let (Some(e), Some(v), Some(q)) = (edges.as_slice(py), values.as_slice(py), z.as_slice(py))
    else {
        return Err(pyo3::exceptions::PyValueError::new_err("arrays must be contiguous"));
    };
    let Some(c) = counts.as_mut_slice(py) else {
        return Err(pyo3::exceptions::PyValueError::new_err("counts must be writable"));
    };
    if e.is_empty() || e.len() > u16::MAX as usize || v.len() != q.len() || c.len() != e.len() + 1 {
        return Err(pyo3::exceptions::PyValueError::new_err("mismatched histogram arrays"));
    }
    // ReadOnlyCell<T> is a transparent T read while the caller holds the arrays
    let e: &[f64] = unsafe { std::slice::from_raw_parts(e.as_ptr() as *const f64, e.len()) };
    let v: &[f64] = unsafe { std::slice::from_raw_parts(v.as_ptr() as *const f64, v.len()) };
    let q: &[i64] = unsafe { std::slice::from_raw_parts(q.as_ptr() as *const i64, q.len()) };
    let mut found = vec![0u8; 2 * v.len()];
    at_or_below(e, v, &mut found);
    let last = e.len() - 1;
    let top = e[last];
    let mut local = vec![0i64; c.len()];
    let (mut below, mut above) = (0i64, 0i64);
    for (i, pair) in found.chunks_exact(2).enumerate() {
        // no branch on the data: fresh values would mispredict (5x slower than repeated ones)
        let found = u16::from_ne_bytes([pair[0], pair[1]]) as usize;
        let k = std::hint::select_unpredictable(v[i] == top, last, found);
        local[k] += 1;
        below += q[i] * (k == 0) as i64;
        above += q[i] * (k == last + 1) as i64;
    }
    for (cell, add) in c.iter().zip(local) {
        cell.set(cell.get() + add);
    }
    Ok((below, above))
}

/// Per value, how many of the sorted `e` are at or below it: a binary search whose steps depend
/// only on e's length, four values at a time, with no branch on the data to mispredict
/// (`select_unpredictable`: a plain `if` compiled to a branch, 5x slower on fresh values).
fn at_or_below(e: &[f64], v: &[f64], out: &mut [u8]) {
    let out: &mut [u16] = unsafe {
        std::slice::from_raw_parts_mut(out.as_mut_ptr() as *mut u16, v.len())
    };
    if e.is_empty() {
        out.fill(0);
        return;
    }
    let mut chunks = v.chunks_exact(4);
    let mut k = 0;
    for c in &mut chunks {
        let mut base = [0usize; 4];
        let mut n = e.len();
        while n > 1 {
            let half = n / 2;
            for j in 0..4 {
                base[j] = std::hint::select_unpredictable(e[base[j] + half] <= c[j], base[j] + half, base[j]);
            }
            n -= half;
        }
        for j in 0..4 {
            out[k + j] = (base[j] + (e[base[j]] <= c[j]) as usize) as u16;
        }
        k += 4;
    }
    for &x in chunks.remainder() {
        let mut base = 0usize;
        let mut n = e.len();
        while n > 1 {
            let half = n / 2;
            base = std::hint::select_unpredictable(e[base + half] <= x, base + half, base);
            n -= half;
        }
        out[k] = (base + (e[base] <= x) as usize) as u16;
        k += 1;
    }
}

/// The records of a fetch response's record batches, read where they lie: (values, keys,
/// offsets, next offset), the first two as (start, end) pairs of native u64 into `buffer`
/// ((2^64-1, 2^64-1) for null), offsets as native i64; records before `start` left out. None
/// when the buffer holds what is read elsewhere (compressed batches, the old formats, a CRC
/// that does not match): the caller reads it with aiokafka.
#[pyfunction]
#[allow(clippy::type_complexity)]
fn kafka_records<'py>(py: Python<'py>, buffer: Bound<'py, PyBytes>, start: i64, check_crcs: bool)
    -> Option<(Bound<'py, PyBytes>, Bound<'py, PyBytes>, Bound<'py, PyBytes>, i64)> {
    let buf = buffer.as_bytes();
    let found = py.allow_threads(|| kafka::read(buf, start, check_crcs)).ok()?;
    Some((bytes(py, &found.values), bytes(py, &found.keys), bytes(py, &found.offsets),
          found.next_offset))
}

/// Python's `str.isspace()` code points as this module knows them (for the tests).
#[pyfunction]
fn space_code_points() -> Vec<u32> {
    text::PY_SPACE.to_vec()
}

/// (code points, tokens) of a string, as the text summary counts them (for the tests).
#[pyfunction]
fn measure(s: &str) -> (u32, u32) {
    text::measure(s.as_bytes())
}

/// Epoch seconds of an ISO 8601 time in the form this module reads, else None (for the tests).
#[pyfunction]
fn parse_iso(s: &str) -> Option<f64> {
    iso::parse(s.as_bytes())
}

#[pymodule]
fn drift_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Decoder>()?;
    m.add_function(wrap_pyfunction!(space_code_points, m)?)?;
    m.add_function(wrap_pyfunction!(split_lines, m)?)?;
    m.add_function(wrap_pyfunction!(kafka_records, m)?)?;
    m.add_function(wrap_pyfunction!(histogram, m)?)?;
    m.add_function(wrap_pyfunction!(measure, m)?)?;
    m.add_function(wrap_pyfunction!(parse_iso, m)?)?;
    Ok(())
}
