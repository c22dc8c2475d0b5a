//! Label and field selectors, as list and watch requests carry them.

pub mod fields;
pub mod labels;

pub use fields::{FieldSelector, FieldTerm, Fields};
pub use labels::{LabelSelector, Operator, Requirement, SelectorError};
