//! Controls that let users test their wait and failure logic: a delay per kind of
//! transition and a one-shot injected failure.

use serde::{Deserialize, Serialize};

/// The transitions that can be delayed or failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    Create,
    Restart,
    Extend,
    Delete,
}

impl Transition {
    pub fn task_name(self) -> &'static str {
        match self {
            Transition::Create => "createInstance",
            Transition::Restart => "restartInstance",
            Transition::Extend => "extendInstance",
            Transition::Delete => "deleteInstance",
        }
    }
}

/// How one kind of transition behaves. The defaults complete as soon as the brokers are
/// ready.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransitionControl {
    /// Hold the final status this many milliseconds after the work is done.
    pub delay_ms: u64,
    /// Hold the final status until the instance has been read (GET of the instance) this many
    /// times: the first `delay_reads` reads still show the transitional status.
    pub delay_reads: u32,
    /// Make the next transition of this kind fail (then reset to false).
    pub fail_next: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LifecycleControls {
    pub create: TransitionControl,
    pub restart: TransitionControl,
    pub extend: TransitionControl,
    pub delete: TransitionControl,
}

impl LifecycleControls {
    pub fn get_mut(&mut self, t: Transition) -> &mut TransitionControl {
        match t {
            Transition::Create => &mut self.create,
            Transition::Restart => &mut self.restart,
            Transition::Extend => &mut self.extend,
            Transition::Delete => &mut self.delete,
        }
    }

    /// The control for the next transition of kind `t`, consuming a pending failure.
    pub fn take(&mut self, t: Transition) -> TransitionControl {
        let c = self.get_mut(t);
        let out = c.clone();
        c.fail_next = false;
        out
    }
}
