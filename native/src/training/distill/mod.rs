//! Distillation into a smaller student: `config` is the `[training.distill]` table, `teacher`
//! reads and checks the teacher and caches its outputs over the training windows; the loss
//! terms are in `model::objectives::distillation`.

mod config;
mod teacher;

pub use config::DistillConfig;
pub use teacher::{PADDED_SCORE, Teacher, TeacherCache, TeacherTargets};
