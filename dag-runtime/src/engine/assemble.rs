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

    /// The output of `node`. The engine fetches every parent a node's templates name, so a
    /// missing one means the plan's templates and its parent lists disagree (a plan that did not
    /// pass [`Plan::validate`](crate::plan::Plan::validate)): an error, not a panic, since the
    /// plan came from a store.
    fn get(&self, node: u32) -> Result<&Bytes, String> {
        match self.0.binary_search_by_key(&node, |(n, _)| *n) {
            Ok(at) => Ok(&self.0[at].1),
            Err(_) => Err(format!(
                "the plan takes the output of node {node}, which is not among this node's \
                 parents; was it built by other code?"
            )),
        }
    }

    /// The bytes of one parameter.
    ///
    /// Fails for a template that names a node whose output was not fetched, and for one that
    /// still refers to a map's element or outer values, which the engine replaces when it
    /// expands the map: a plan holding either is corrupt.
    pub fn assemble(&self, template: &ArgTemplate) -> Result<Bytes, String> {
        Ok(match template {
            ArgTemplate::Const(bytes) => bytes.clone(),
            ArgTemplate::Parent(node) => self.get(*node)?.clone(),
            ArgTemplate::List(_) | ArgTemplate::Map(_) => {
                let mut buf = Vec::new();
                self.write(template, &mut buf)?;
                buf.into()
            }
            ArgTemplate::Element | ArgTemplate::Outer(_) => return Err(unexpanded()),
        })
    }

    /// Appends the encoding of `template` to `buf`. An explicit stack instead of recursion: a
    /// validated plan nests templates only a few levels deep, but this must not overflow the
    /// stack on one that was not validated either.
    fn write(&self, template: &ArgTemplate, buf: &mut Vec<u8>) -> Result<(), String> {
        /// What is left to write: a template, or a map key (written before its value).
        enum Part<'t> {
            Template(&'t ArgTemplate),
            Key(&'t str),
        }
        // Writing into a Vec cannot fail; the Results are rmp's generic I/O signature.
        const INFALLIBLE: &str = "writing MessagePack into a Vec cannot fail";
        let mut parts = vec![Part::Template(template)];
        while let Some(part) = parts.pop() {
            let template = match part {
                Part::Key(key) => {
                    rmp::encode::write_str(buf, key).expect(INFALLIBLE);
                    continue;
                }
                Part::Template(template) => template,
            };
            match template {
                ArgTemplate::Const(bytes) => buf.extend_from_slice(bytes),
                ArgTemplate::Parent(node) => buf.extend_from_slice(self.get(*node)?),
                ArgTemplate::List(items) => {
                    // A decoded plan's lists came from MessagePack arrays: at most u32::MAX long.
                    let len = u32::try_from(items.len()).map_err(|_| too_long())?;
                    rmp::encode::write_array_len(buf, len).expect(INFALLIBLE);
                    parts.extend(items.iter().rev().map(Part::Template));
                }
                ArgTemplate::Map(entries) => {
                    let len = u32::try_from(entries.len()).map_err(|_| too_long())?;
                    rmp::encode::write_map_len(buf, len).expect(INFALLIBLE);
                    for (key, value) in entries.iter().rev() {
                        parts.push(Part::Template(value));
                        parts.push(Part::Key(key));
                    }
                }
                ArgTemplate::Element | ArgTemplate::Outer(_) => return Err(unexpanded()),
            }
        }
        Ok(())
    }
}

fn too_long() -> String {
    "the plan assembles a list or map of more than 2^32-1 elements, which MessagePack cannot \
     hold"
        .into()
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
    fn a_template_naming_an_unfetched_node_is_an_error_not_a_panic() {
        let inputs = Inputs::new(vec![(1, encode(&1_i64).unwrap())]);
        for template in [
            ArgTemplate::Parent(2),
            ArgTemplate::List(vec![ArgTemplate::Parent(1), ArgTemplate::Parent(0)]),
            ArgTemplate::Map(vec![("k".into(), ArgTemplate::Parent(9))]),
        ] {
            let error = inputs.assemble(&template).unwrap_err();
            assert!(error.contains("not among this node's parents"), "{error}");
        }
    }

    #[test]
    fn a_map_of_outputs_decodes_as_a_hash_map() {
        let inputs = Inputs::new(vec![(0, encode("x").unwrap())]);
        let template = ArgTemplate::Map(vec![("k".into(), ArgTemplate::Parent(0))]);
        let map: HashMap<String, String> = decode(&inputs.assemble(&template).unwrap()).unwrap();
        assert_eq!(map, HashMap::from([("k".to_string(), "x".to_string())]));
    }
}
