//! # The admin REST API role (`nimbus-cloud api`, the seed's API Gateway on 8080)
//!
//! A role only composes: [`gateway`] builds the whole API from the services' route tables
//! (`user`, `course`, `timetable`, `attendance`, `registry`, `dlq`, `content`) and wraps it in the
//! middleware every request passes; [`auth`] authenticates bearer tokens into a
//! [`crate::http::Caller`]; [`health`] serves the probes, `/metrics` and `/openapi.json`, which [`openapi`] builds;
//! [`explorer`] the pages for people (`/`, and the bundled API explorer at `/docs`);
//! [`services`] merges the services' route tables over their shared state; [`tls`] serves it
//! over HTTPS when a certificate is configured. The shared HTTP
//! plumbing (the route table, extractors, the `AppError` mapping) is [`crate::http`].

pub mod auth;
pub mod explorer;
pub mod gateway;
pub mod health;
pub mod openapi;
pub mod services;
pub mod state;
pub mod tls;

pub use gateway::{ApiState, app, run, run_with};
pub use openapi::document as openapi;
