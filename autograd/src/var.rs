//! [`Var`]: a tensor that remembers how it was computed, and the reverse-mode engine.
//!
//! Each op on `Var`s that need gradients creates a graph node holding a backward closure
//! (which owns exactly the tensors that backward needs) and links to its inputs' nodes.
//! Values themselves live in the `Var` handles, so an intermediate that backward does not
//! need is freed as soon as the forward code drops it. `backward` walks nodes in reverse
//! creation order (node ids grow monotonically, so every child precedes its parents),
//! and each closure is consumed when run, freeing its saved activations right away.

use std::cell::{Cell, RefCell};
use std::collections::{BinaryHeap, HashMap};
use std::rc::Rc;
use tensor::{Backend, Tensor};

/// Computes the gradients of an op's inputs from the gradient of its output. The flags
/// say which inputs need one; entries for the others may be `None`.
pub(crate) type BackwardFn<B> = Box<dyn FnOnce(&Tensor<B>, &[bool]) -> Vec<Option<Tensor<B>>>>;

pub(crate) enum NodeKind<B: Backend> {
    /// A parameter: gradients accumulate here across `backward` calls.
    Leaf {
        grad: RefCell<Option<Tensor<B>>>,
    },
    Op {
        inputs: RefCell<Vec<Option<Rc<Node<B>>>>>,
        backward: RefCell<Option<BackwardFn<B>>>,
    },
}

pub(crate) struct Node<B: Backend> {
    id: u64,
    pub(crate) kind: NodeKind<B>,
}

thread_local! {
    static NEXT_ID: Cell<u64> = const { Cell::new(0) };
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

fn next_id() -> u64 {
    NEXT_ID.with(|c| {
        let id = c.get();
        c.set(id + 1);
        id
    })
}

impl<B: Backend> Node<B> {
    pub(crate) fn leaf() -> Rc<Self> {
        Rc::new(Node { id: next_id(), kind: NodeKind::Leaf { grad: RefCell::new(None) } })
    }
}

/// True unless inside [`no_grad`].
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(Cell::get)
}

/// Runs `f` without recording a graph (evaluation, generation).
pub fn no_grad<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            GRAD_ENABLED.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(GRAD_ENABLED.with(|c| c.replace(false)));
    f()
}

/// A tensor value plus, when gradients are recorded, its place in the graph.
pub struct Var<B: Backend> {
    value: Tensor<B>,
    pub(crate) node: Option<Rc<Node<B>>>,
}

impl<B: Backend> Clone for Var<B> {
    fn clone(&self) -> Self {
        Var { value: self.value.clone(), node: self.node.clone() }
    }
}

impl<B: Backend> std::fmt::Debug for Var<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Var({:?}, grad: {})", self.value, self.requires_grad())
    }
}

impl<B: Backend> Var<B> {
    /// A constant: no gradient flows into it.
    pub fn constant(value: Tensor<B>) -> Self {
        Var { value, node: None }
    }

    pub(crate) fn with_node(value: Tensor<B>, node: Rc<Node<B>>) -> Self {
        Var { value, node: is_grad_enabled().then_some(node) }
    }

    /// Records an op whose output is `value`, computed from `inputs`, with its backward
    /// rule: given the output gradient and which inputs need gradients, return one
    /// gradient per input (shaped like it). This is how fused ops outside this crate
    /// (e.g. the model's GHC coefficients) join the graph. When no input needs a
    /// gradient, or recording is off, the closure is dropped at once.
    pub fn from_op(
        value: Tensor<B>,
        inputs: &[&Var<B>],
        backward: impl FnOnce(&Tensor<B>, &[bool]) -> Vec<Option<Tensor<B>>> + 'static,
    ) -> Self {
        if !is_grad_enabled() || inputs.iter().all(|v| v.node.is_none()) {
            return Var::constant(value);
        }
        let node = Node {
            id: next_id(),
            kind: NodeKind::Op {
                inputs: RefCell::new(inputs.iter().map(|v| v.node.clone()).collect()),
                backward: RefCell::new(Some(Box::new(backward))),
            },
        };
        Var { value, node: Some(Rc::new(node)) }
    }

    pub fn value(&self) -> &Tensor<B> {
        &self.value
    }
    pub fn shape(&self) -> &[usize] {
        self.value.shape()
    }
    pub fn dim(&self, axis: usize) -> usize {
        self.value.dim(axis)
    }
    pub fn rank(&self) -> usize {
        self.value.rank()
    }
    pub fn requires_grad(&self) -> bool {
        self.node.is_some()
    }
    /// The same value, cut off from the graph.
    pub fn detach(&self) -> Self {
        Var::constant(self.value.clone())
    }
    /// The single element of a one-element value.
    pub fn item(&self) -> f64 {
        self.value.item()
    }

    /// Back-propagates from this one-element output with seed gradient 1, accumulating
    /// into the leaves (parameters). Consumes the graph behind this output.
    pub fn backward(&self) {
        assert_eq!(self.value.numel(), 1, "backward needs a one-element output, got shape {:?}", self.shape());
        self.backward_with(Tensor::ones(self.shape(), self.value.backend()));
    }

    /// Back-propagates an explicit output gradient.
    pub fn backward_with(&self, grad: Tensor<B>) {
        assert_eq!(grad.shape(), self.shape(), "backward_with: gradient shape differs from the output");
        let Some(root) = &self.node else { return };
        tensor::profile::in_phase(tensor::profile::Phase::Backward, || Self::walk(root, grad));
    }

    /// Runs the backward rules from `root` in reverse creation order.
    fn walk(root: &Rc<Node<B>>, grad: Tensor<B>) {
        let mut pending: HashMap<u64, (Rc<Node<B>>, Tensor<B>)> = HashMap::new();
        let mut order = BinaryHeap::new();
        pending.insert(root.id, (root.clone(), grad));
        order.push(root.id);
        while let Some(id) = order.pop() {
            let (node, grad) = pending.remove(&id).expect("every queued node has a pending gradient");
            match &node.kind {
                NodeKind::Leaf { grad: acc } => {
                    let mut acc = acc.borrow_mut();
                    *acc = Some(match acc.take() {
                        Some(g) => g.add(&grad),
                        None => grad,
                    });
                }
                NodeKind::Op { inputs, backward } => {
                    let Some(f) = backward.borrow_mut().take() else {
                        panic!("backward through a graph that was already consumed (call backward once per forward)");
                    };
                    // Taking the inputs releases this node's links: parts of the graph no
                    // one else holds are freed as the walk proceeds.
                    let inputs = std::mem::take(&mut *inputs.borrow_mut());
                    let needs: Vec<bool> = inputs.iter().map(Option::is_some).collect();
                    let grads = f(&grad, &needs);
                    debug_assert_eq!(grads.len(), inputs.len(), "backward rule returned the wrong number of gradients");
                    for (input, g) in inputs.into_iter().zip(grads) {
                        let (Some(input), Some(g)) = (input, g) else { continue };
                        match pending.get_mut(&input.id) {
                            Some((_, acc)) => *acc = acc.add(&g),
                            None => {
                                order.push(input.id);
                                pending.insert(input.id, (input, g));
                            }
                        }
                    }
                }
            }
        }
    }
}
