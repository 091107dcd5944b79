//! One record of a message read into scratch space: its model, version, time, feature values
//! and prediction, with every check the Python reference makes (monitor/ingest/records.py)
//! that decides whether the record is valid. A record this cannot vouch for is `Refuse`.

use crate::iso;
use crate::json::{bytes_of, chars, Refuse, Scanner, FLOAT, INT, NULL, R, S, STR, V};

pub const MAX_NAME_CHARS: usize = 200;
pub const WIDE_RECORD_NAMES: usize = 1_000;

#[derive(Clone, Copy, Debug)]
pub enum Version {
    Str(S),
    Int(i64),
    Float(f64),
}

#[derive(Clone, Copy, Debug)]
pub enum Prediction {
    Missing, // or null
    Scalar(V),
    Object(usize, usize), // a range of `Rec::outputs`
}

pub struct Rec {
    pub model: Option<S>,
    pub version: Option<Version>,
    pub ts: f64,
    pub features: Vec<(S, V)>,
    pub outputs: Vec<(S, V)>,
    pub prediction: Prediction,
}

impl Rec {
    pub fn new() -> Self {
        Rec { model: None, version: None, ts: 0.0, features: Vec::new(), outputs: Vec::new(),
              prediction: Prediction::Missing }
    }
}

const MODEL: u8 = 1;
const VERSION: u8 = 2;
const TS: u8 = 4;
const FEATURES: u8 = 8;
const PREDICTION: u8 = 16;

/// Reads the record at the scanner (an object) into `rec`; `latest`: the newest valid time.
pub fn read(sc: &mut Scanner, arena: &mut Vec<u8>, rec: &mut Rec, latest: f64) -> R<()> {
    rec.model = None;
    rec.version = None;
    rec.features.clear();
    rec.outputs.clear();
    rec.prediction = Prediction::Missing;
    let mut seen = 0u8;
    if sc.open(b'{', b'}')? {
        return Err(Refuse); // no model
    }
    loop {
        sc.ws();
        let key = sc.string(arena)?;
        sc.eat(b':')?;
        let field = match bytes_of(key, sc.b, arena) {
            b"model" => MODEL,
            b"version" => VERSION,
            b"ts" => TS,
            b"features" => FEATURES,
            b"prediction" => PREDICTION,
            _ => 0,
        };
        if seen & field != 0 {
            return Err(Refuse); // a repeated key: Python keeps the last, this path none
        }
        seen |= field;
        match field {
            MODEL => match sc.value(arena, 1)? {
                v if v.tag == STR => rec.model = Some(v.s),
                _ => return Err(Refuse),
            },
            VERSION => {
                let v = sc.value(arena, 1)?;
                rec.version = Some(match v.tag {
                    STR => {
                        let n = chars(bytes_of(v.s, sc.b, arena));
                        if n == 0 || n > MAX_NAME_CHARS {
                            return Err(Refuse);
                        }
                        Version::Str(v.s)
                    }
                    INT => Version::Int(v.int()),
                    FLOAT => Version::Float(v.float()),
                    _ => return Err(Refuse),
                })
            }
            TS => {
                let v = sc.value(arena, 1)?;
                rec.ts = match v.tag {
                    INT => v.int() as f64,
                    FLOAT => v.float(),
                    STR => iso::parse(bytes_of(v.s, sc.b, arena)).ok_or(Refuse)?,
                    _ => return Err(Refuse),
                };
                if !(rec.ts <= latest) {
                    return Err(Refuse);
                }
            }
            FEATURES => {
                if sc.open(b'{', b'}')? {
                    // no features
                } else {
                    members(sc, arena, &mut rec.features)?;
                    if rec.features.len() > WIDE_RECORD_NAMES {
                        return Err(Refuse);
                    }
                }
            }
            PREDICTION => {
                rec.prediction = match sc.peek()? {
                    b'[' => return Err(Refuse), // invalid: the reference says why
                    b'{' => {
                        if sc.open(b'{', b'}')? {
                            Prediction::Object(0, 0)
                        } else {
                            members(sc, arena, &mut rec.outputs)?;
                            Prediction::Object(0, rec.outputs.len())
                        }
                    }
                    _ => match sc.value(arena, 1)? {
                        v if v.tag == NULL => Prediction::Missing,
                        v => Prediction::Scalar(v),
                    },
                }
            }
            _ => sc.skip(arena, 1)?,
        }
        if sc.next_or_end(b'}')? {
            break;
        }
    }
    if seen & (MODEL | VERSION | TS) != (MODEL | VERSION | TS) {
        return Err(Refuse);
    }
    Ok(())
}

/// The members of an object whose `{` was consumed (and is not empty), up to its `}`.
#[inline(always)]
fn members(sc: &mut Scanner, arena: &mut Vec<u8>, out: &mut Vec<(S, V)>) -> R<()> {
    loop {
        sc.ws();
        let name = sc.string(arena)?;
        sc.eat(b':')?;
        let value = sc.value(arena, 2)?;
        out.push((name, value));
        if sc.next_or_end(b'}')? {
            return Ok(());
        }
    }
}
