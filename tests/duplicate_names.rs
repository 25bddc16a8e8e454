//! Two tasks registered under one name make `compute` fail with a clear error.
//! (A test binary of its own, because the registry is global to the process.)

use dag::prelude::*;

mod first {
    use super::*;
    #[task(name = "shared::name")]
    pub fn one() -> i64 {
        1
    }
}

mod second {
    use super::*;
    #[task(name = "shared::name")]
    pub fn two() -> i64 {
        2
    }
}

#[test]
fn a_name_collision_is_reported_not_guessed() {
    let error = first::one().compute().unwrap_err();
    assert_eq!(
        error,
        DagError::DuplicateTaskName {
            name: "shared::name".into()
        }
    );
    assert!(error.to_string().contains("#[task(name = \"...\")]"));
    assert!(second::two().compute().is_err());
}
