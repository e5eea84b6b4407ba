//! Haven's intake bot (issue 5, in progress). So far: the offline interviewer — deterministic
//! slot filling with keyword and pattern extraction ([`extract`]) driving a short interview
//! ([`interview`]) into the structured profile ([`profile`]) the bot writes as the
//! `org.haven.intake.profile` state event.

pub mod bot;
pub mod extract;
pub mod interview;
pub mod model;
pub mod profile;
