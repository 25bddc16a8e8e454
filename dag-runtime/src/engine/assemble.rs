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

    /// The bytes of every parameter of a node, in order.
    pub fn assemble_all(&self, templates: &[ArgTemplate]) -> Result<Vec<Bytes>, String> {
        templates.iter().map(|t| self.assemble(t)).collect()
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

    /// Fuzzing: the arguments of a node of a validated plan, from any bytes its parents output.
    mod fuzz {
        use super::*;
        use crate::codec::split_array;
        use crate::plan::{link, Plan, PlanNode};
        use proptest::prelude::*;

        /// Parents the node under test may take outputs from.
        const PARENTS: u32 = 4;

        /// Templates whose constants are any bytes at all.
        fn template() -> impl Strategy<Value = ArgTemplate> {
            templates(prop::collection::vec(any::<u8>(), 0..8).prop_map(Bytes::from))
        }

        /// Templates whose constants are whole MessagePack values.
        fn whole_template() -> impl Strategy<Value = ArgTemplate> {
            templates(any::<i64>().prop_map(|v| encode(&v).unwrap()))
        }

        fn templates(
            constant: impl Strategy<Value = Bytes> + 'static,
        ) -> impl Strategy<Value = ArgTemplate> {
            let leaf = prop_oneof![
                (0..PARENTS).prop_map(ArgTemplate::Parent),
                constant.prop_map(ArgTemplate::Const),
            ];
            leaf.prop_recursive(4, 32, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..20).prop_map(ArgTemplate::List),
                    prop::collection::vec((".{0,3}", inner), 0..4).prop_map(ArgTemplate::Map),
                ]
            })
        }

        fn node(args: Vec<ArgTemplate>) -> PlanNode {
            PlanNode {
                task: 0,
                args,
                children: Vec::new(),
                parents: 0,
                map: None,
                element: None,
            }
        }

        /// A validated plan: `PARENTS` roots, then one node taking `args`.
        fn plan(args: Vec<ArgTemplate>) -> Plan {
            let mut nodes: Vec<PlanNode> = (0..PARENTS).map(|_| node(Vec::new())).collect();
            nodes.push(node(args));
            link(&mut nodes);
            let plan = Plan {
                tasks: vec!["t".into()],
                sink: PARENTS,
                nodes,
                parent: None,
                signatures: vec!["fn t()".into()],
                policy: Default::default(),
            };
            plan.validate()
                .expect("a linked plan of in-range parents is valid");
            plan
        }

        /// The size of the assembled bytes: headers as rmp writes them, then the parts.
        fn expected_len(template: &ArgTemplate, outputs: &[Vec<u8>]) -> usize {
            let header = |n: usize| match n {
                0..=15 => 1,
                16..=65535 => 3,
                _ => 5,
            };
            let mut len = 0;
            let mut stack = vec![template];
            while let Some(template) = stack.pop() {
                len += match template {
                    ArgTemplate::Const(bytes) => bytes.len(),
                    ArgTemplate::Parent(p) => outputs[*p as usize].len(),
                    ArgTemplate::List(items) => {
                        stack.extend(items);
                        header(items.len())
                    }
                    ArgTemplate::Map(entries) => {
                        stack.extend(entries.iter().map(|(_, value)| value));
                        let keys: usize = entries
                            .iter()
                            .map(|(key, _)| if key.len() < 32 { 1 } else { 2 } + key.len())
                            .sum();
                        header(entries.len()) + keys
                    }
                    ArgTemplate::Element | ArgTemplate::Outer(_) => unreachable!("not generated"),
                };
            }
            len
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None,
                ..ProptestConfig::default() })]

            #[test]
            fn arguments_assemble_from_any_output_bytes(
                args in prop::collection::vec(template(), 1..4),
                outputs in prop::collection::vec(
                    prop::collection::vec(any::<u8>(), 0..16), PARENTS as usize),
            ) {
                let plan = plan(args);
                let node = plan.node(PARENTS);
                let fetched = node
                    .distinct_parents()
                    .into_iter()
                    .map(|p| (p, Bytes::from(outputs[p as usize].clone())))
                    .collect();
                let inputs = Inputs::new(fetched);
                for arg in &node.args {
                    let bytes = inputs.assemble(arg).unwrap();
                    prop_assert_eq!(bytes.len(), expected_len(arg, &outputs));
                }
            }

            #[test]
            fn a_list_of_whole_values_splits_into_its_items(
                items in prop::collection::vec(whole_template(), 0..40),
                values in prop::collection::vec(any::<i64>(), PARENTS as usize),
            ) {
                // Outputs and constants that are whole MessagePack values.
                let outputs: Vec<Vec<u8>> =
                    values.iter().map(|v| encode(v).unwrap().to_vec()).collect();
                let list = ArgTemplate::List(items.clone());
                let plan = plan(vec![list.clone()]);
                let fetched = plan
                    .node(PARENTS)
                    .distinct_parents()
                    .into_iter()
                    .map(|p| (p, Bytes::from(outputs[p as usize].clone())))
                    .collect();
                let bytes = Inputs::new(fetched).assemble(&list).unwrap();
                let parts = split_array(&bytes).unwrap();
                prop_assert_eq!(parts.len(), items.len());
            }

            #[test]
            fn a_parent_that_was_not_fetched_is_an_error(
                args in prop::collection::vec(template(), 1..4),
                missing in 0..PARENTS,
            ) {
                let plan = plan(args);
                let node = plan.node(PARENTS);
                let fetched = node
                    .distinct_parents()
                    .into_iter()
                    .filter(|&p| p != missing)
                    .map(|p| (p, Bytes::from_static(&[0xc0])))
                    .collect();
                let inputs = Inputs::new(fetched);
                for arg in &node.args {
                    let mut names_missing = false;
                    arg.for_each_parent(&mut |p| names_missing |= p == missing);
                    prop_assert_eq!(inputs.assemble(arg).is_err(), names_missing);
                }
            }
        }
    }
}
