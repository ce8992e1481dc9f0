//! Everything twlab shows a person: the markdown report and the terminal
//! table ([`report`]), SVG charts, the HTML page, JUnit XML for CI, and the
//! comparison of two run directories ([`compare`]).
//!
//! Each format reads a [`crate::results::Summary`] (or two run
//! directories) and returns text; writing it is the caller's job, so every
//! format can be rendered again later by `twlab report`.

pub mod charts;
pub mod compare;
pub mod html;
pub mod junit;
pub(crate) mod markdown;
pub mod report;
