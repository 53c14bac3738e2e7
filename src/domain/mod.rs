//! The pure core: recipes, validation, the procedure, fleet planning. No I/O here: every
//! function takes text or values and returns values; "today" is passed in, never read.

pub mod device;
pub mod digest;
pub mod finding;
pub mod fleet;
pub mod model;
pub mod multicast;
pub mod procedure;
pub mod recipe;
pub mod site;
pub mod toml_read;
pub mod validate;
pub mod workspace;
