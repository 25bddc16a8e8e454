//! Building a parameter's bytes from its [`ArgTemplate`] and the parents' outputs.
//!
//! MessagePack is self-delimiting, so a list of parent outputs becomes a `Vec<T>` argument by
//! writing an array header followed by the outputs as they are: no decoding, no re-encoding.

use bytes::Bytes;

use crate::plan::ArgTemplate;

/// The outputs a task's parents produced, sorted by node index.
pub struct Inputs(Vec<(u32, Bytes)>);

impl Inputs {
    /// Wraps `(node, output)` pairs, sorting them for lookup.
    pub fn new(mut outputs: Vec<(u32, Bytes)>) -> Self {
        outputs.sort_unstable_by_key(|(node, _)| *node);
        Inputs(outputs)
    }

    fn get(&self, node: u32) -> &Bytes {
        let at = self
            .0
            .binary_search_by_key(&node, |(n, _)| *n)
            .expect("the engine fetches every parent a template names");
        &self.0[at].1
    }

    /// The bytes of one parameter.
    ///
    /// Fails only for a template that still refers to a map's element or outer values, which
    /// the engine replaces when it expands the map: a plan holding one is corrupt.
    pub fn assemble(&self, template: &ArgTemplate) -> Result<Bytes, String> {
        Ok(match template {
            ArgTemplate::Const(bytes) => bytes.clone(),
            ArgTemplate::Parent(node) => self.get(*node).clone(),
            ArgTemplate::List(_) | ArgTemplate::Map(_) => {
                let mut buf = Vec::new();
                self.write(template, &mut buf)?;
                buf.into()
            }
            ArgTemplate::Element | ArgTemplate::Outer(_) => return Err(unexpanded()),
        })
    }

    /// The bytes of every parameter of a node, in order.
    pub fn assemble_all(&self, templates: &[ArgTemplate]) -> Result<Vec<Bytes>, String> {
        templates.iter().map(|t| self.assemble(t)).collect()
    }

    fn write(&self, template: &ArgTemplate, buf: &mut Vec<u8>) -> Result<(), String> {
        // Writing into a Vec cannot fail; the Results are rmp's generic I/O signature.
        const INFALLIBLE: &str = "writing MessagePack into a Vec cannot fail";
        match template {
            ArgTemplate::Const(bytes) => buf.extend_from_slice(bytes),
            ArgTemplate::Parent(node) => buf.extend_from_slice(self.get(*node)),
            ArgTemplate::List(items) => {
                rmp::encode::write_array_len(buf, items.len() as u32).expect(INFALLIBLE);
                for item in items {
                    self.write(item, buf)?;
                }
            }
            ArgTemplate::Map(entries) => {
                rmp::encode::write_map_len(buf, entries.len() as u32).expect(INFALLIBLE);
                for (key, value) in entries {
                    rmp::encode::write_str(buf, key).expect(INFALLIBLE);
                    self.write(value, buf)?;
                }
            }
            ArgTemplate::Element | ArgTemplate::Outer(_) => return Err(unexpanded()),
        }
        Ok(())
    }
}

fn unexpanded() -> String {
    "the plan refers to a map element outside an expanded map; was it built by other code?".into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode, encode};
    use std::collections::HashMap;

    #[test]
    fn a_list_of_outputs_decodes_as_a_vec() {
        let inputs = Inputs::new(vec![
            (7, encode(&2_i64).unwrap()),
            (3, encode(&1_i64).unwrap()),
        ]);
        let template = ArgTemplate::List(vec![
            ArgTemplate::Parent(3),
            ArgTemplate::Const(encode(&5_i64).unwrap()),
            ArgTemplate::Parent(7),
        ]);
        let bytes = inputs.assemble(&template).unwrap();
        assert_eq!(decode::<Vec<i64>>(&bytes).unwrap(), vec![1, 5, 2]);
    }

    #[test]
    fn a_map_of_outputs_decodes_as_a_hash_map() {
        let inputs = Inputs::new(vec![(0, encode("x").unwrap())]);
        let template = ArgTemplate::Map(vec![("k".into(), ArgTemplate::Parent(0))]);
        let map: HashMap<String, String> = decode(&inputs.assemble(&template).unwrap()).unwrap();
        assert_eq!(map, HashMap::from([("k".to_string(), "x".to_string())]));
    }
}
