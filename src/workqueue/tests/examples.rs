// SPDX-License-Identifier: GPL-2.0

//! Suite `rust_wq_examples`: the layer's documentation examples, compiled and run.
//!
//! Each example is a file under `src/workqueue/examples/`, shown in the documentation of the
//! item it is about (`#[doc = include_str!(..)]`) and included here as a module (`include!`):
//! the text of the docs is the code this suite builds and runs, so it cannot drift. An example
//! is a function `example() -> Result` that fails (`EINVAL`) when what it shows does not hold.

#[kernel::prelude::kunit_tests(rust_wq_examples)]
mod tests {
    use kernel::prelude::*;

    /// Each example in a module of its own (they have their own imports and items).
    macro_rules! examples {
        ($($name:ident => $file:literal),* $(,)?) => {
            $(
                mod $name {
                    include!($file);
                }
            )*
        };
    }

    examples! {
        builder => "../examples/builder.rs",
        delayed_item => "../examples/delayed_item.rs",
        field => "../examples/field.rs",
        on_cpu => "../examples/on_cpu.rs",
        owned => "../examples/owned.rs",
        queue => "../examples/queue.rs",
        rcu => "../examples/rcu.rs",
        scoped => "../examples/scoped.rs",
        static_delayed => "../examples/static_delayed.rs",
        static_work => "../examples/static_work.rs",
        work_item => "../examples/work_item.rs",
    }

    #[test]
    fn example_builder() -> Result {
        builder::example()
    }

    #[test]
    fn example_delayed_item() -> Result {
        delayed_item::example()
    }

    #[test]
    fn example_field() -> Result {
        field::example()
    }

    #[test]
    fn example_on_cpu() -> Result {
        on_cpu::example()
    }

    #[test]
    fn example_owned() -> Result {
        owned::example()
    }

    #[test]
    fn example_queue() -> Result {
        queue::example()
    }

    #[test]
    fn example_rcu() -> Result {
        rcu::example()
    }

    #[test]
    fn example_scoped() -> Result {
        scoped::example()
    }

    #[test]
    fn example_static_delayed() -> Result {
        static_delayed::example()
    }

    #[test]
    fn example_static_work() -> Result {
        static_work::example()
    }

    #[test]
    fn example_work_item() -> Result {
        work_item::example()
    }
}
