//! The HTTP side of images: the routes `parc-agent` uses to fetch a task, download the image
//! to deploy (with Range, to resume), upload a capture and report progress and status. A later
//! issue mounts [`router`] into `parc serve`.

pub mod access;
pub mod local;
pub mod multicast;
pub mod range;
pub mod records;
pub mod routes;
pub mod service;

pub use routes::router;
pub use service::{CaptureTemplate, ImagesService, TaskState, TaskTicket};
