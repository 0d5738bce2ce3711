//! `mdbook-workbook` runs the shell blocks of an exercise sheet against a
//! real Docker daemon and puts what really happened into the book.
//!
//! The stages follow the data: [`chapter`] parses Markdown, [`script`] turns
//! it into steps, [`session`] runs them into [`record`]s, and [`render`]
//! splices transcripts back into the chapter. [`preprocessor`] drives them
//! for mdBook.

/// A regular expression compiled once, on first use: building a book from
/// its store runs every check and parser again, and compiling patterns
/// each time would cost more than the rest.
#[macro_export]
macro_rules! regex {
    ($re:expr) => {{
        static RE: std::sync::LazyLock<regex::Regex> =
            std::sync::LazyLock::new(|| regex::Regex::new($re).expect("static regex"));
        &*RE
    }};
}

pub mod builds;
pub mod chapter;
pub mod config;
pub mod docker;
pub mod drift;
pub mod findings;
pub mod plan;
pub mod preprocessor;
pub mod progress;
pub mod record;
pub mod render;
pub mod script;
pub mod session;
pub mod store;
pub mod timing;
