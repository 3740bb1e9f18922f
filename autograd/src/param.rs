//! Trainable parameters: named leaves whose gradients accumulate across backward passes.

use crate::var::{Node, NodeKind, Var};
use std::cell::{Ref, RefCell};
use std::rc::Rc;
use tensor::{Backend, Tensor};

/// A named trainable tensor. `weight_decay` says whether decoupled weight decay applies
/// (off for norm gains, biases and static routing matrices, by convention).
pub struct Param<B: Backend> {
    name: String,
    value: RefCell<Tensor<B>>,
    leaf: Rc<Node<B>>,
    weight_decay: bool,
}

impl<B: Backend> std::fmt::Debug for Param<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Param({}, {:?}, decay: {})", self.name, self.value.borrow().shape(), self.weight_decay)
    }
}

impl<B: Backend> Param<B> {
    pub fn new(name: impl Into<String>, value: Tensor<B>, weight_decay: bool) -> Self {
        Param { name: name.into(), value: RefCell::new(value.dense()), leaf: Node::leaf(), weight_decay }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn weight_decay(&self) -> bool {
        self.weight_decay
    }
    pub fn shape(&self) -> Vec<usize> {
        self.value.borrow().shape().to_vec()
    }
    pub fn numel(&self) -> usize {
        self.value.borrow().numel()
    }
    /// The current value (borrowed; do not hold across an optimizer step).
    pub fn value(&self) -> Ref<'_, Tensor<B>> {
        self.value.borrow()
    }
    /// Replaces the value (loading a checkpoint); the shape must match.
    pub fn set_value(&self, value: Tensor<B>) {
        assert_eq!(value.shape(), self.value.borrow().shape(), "Param {}: new value has another shape", self.name);
        *self.value.borrow_mut() = value.dense();
    }
    /// Mutable access for in-place optimizer updates.
    pub(crate) fn value_mut(&self) -> std::cell::RefMut<'_, Tensor<B>> {
        self.value.borrow_mut()
    }

    /// The parameter as a graph input: gradients flowing into it accumulate in
    /// [`Param::grad`] (unless recording is off).
    pub fn var(&self) -> Var<B> {
        Var::with_node(self.value.borrow().clone(), self.leaf.clone())
    }

    /// The accumulated gradient, if any backward pass reached this parameter.
    pub fn grad(&self) -> Option<Tensor<B>> {
        match &self.leaf.kind {
            NodeKind::Leaf { grad } => grad.borrow().clone(),
            NodeKind::Op { .. } => unreachable!("a parameter's node is a leaf"),
        }
    }
    /// Clears the accumulated gradient.
    pub fn zero_grad(&self) {
        if let NodeKind::Leaf { grad } = &self.leaf.kind {
            *grad.borrow_mut() = None;
        }
    }
}
