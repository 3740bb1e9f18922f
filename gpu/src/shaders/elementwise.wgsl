// Elementwise maps over strided views of one shape (broadcast axes have stride 0).
// Parameters: 0 numel, 1 rank, 3 scalar (f32 bits), 4.. shape, then view blocks of
// MAX_RANK strides + offset: output at 10, inputs at 17, 24, 31.
// The op is a pipeline constant, so every op is its own specialised pipeline.

override OP: u32 = 0u;

@group(0) @binding(1) var<storage, read_write> OUT: array<f32>;
@group(0) @binding(2) var<storage, read> A: array<f32>;
@group(0) @binding(3) var<storage, read> B: array<f32>;
@group(0) @binding(4) var<storage, read> C: array<f32>;

const SHAPE: u32 = 4u;
const V_OUT: u32 = 10u;
const V_A: u32 = 17u;
const V_B: u32 = 24u;
const V_C: u32 = 31u;
const GELU_C: f32 = 0.7978845608028654;

fn sigmoid(x: f32) -> f32 {
    return 1.0 / (1.0 + exp(-x));
}

fn gelu_inner(x: f32) -> f32 {
    return GELU_C * (x + 0.044715 * x * x * x);
}

// C's powf for the cases training meets: negative bases with integral exponents keep
// their sign, zero bases give 0 or +inf.
fn powf(x: f32, e: f32) -> f32 {
    if e == 0.0 || x == 1.0 { return 1.0; }
    if is_nan(x) || is_nan(e) { return nan(); }
    let ax = abs(x);
    var r: f32;
    if ax == 0.0 {
        r = select(inf(), 0.0, e > 0.0);
    } else if e == 2.0 {
        r = ax * ax;
    } else if e == 1.0 {
        r = ax;
    } else {
        r = exp2(e * log2(ax));
    }
    if x < 0.0 || (x == 0.0 && bitcast<u32>(x) != 0u) {
        if fract(e) != 0.0 { return nan(); }
        if fract(e * 0.5) != 0.0 { r = -r; }
    }
    return r;
}

fn unary_op(x: f32, s: f32) -> f32 {
    switch OP {
        case 0u: { return -x; }
        case 1u: { return exp(x); }
        case 2u: { return log(x); }
        case 3u: { return sqrt(x); }
        case 4u: { return 1.0 / sqrt(x); }
        case 5u: { return 1.0 / x; }
        case 6u: { return tanh(x); }
        case 7u: { return sigmoid(x); }
        case 8u: { return fmax(x, 0.0); }
        case 9u: { return x * sigmoid(x); }
        case 10u: { return 0.5 * x * (1.0 + tanh(gelu_inner(x))); }
        case 11u: { return x * x; }
        case 12u: { return abs(x); }
        case 13u: { return x + s; }
        case 14u: { return x * s; }
        case 15u: { return powf(x, s); }
        case 16u: { return fmax(x, s); }
        default: { return x; }
    }
}

fn unary_grad(x: f32, g: f32, s: f32) -> f32 {
    switch OP {
        case 0u: { return -g; }
        case 1u: { return g * exp(x); }
        case 2u: { return g / x; }
        case 3u: { return g * 0.5 / sqrt(x); }
        case 4u: { return -g * 0.5 / (x * sqrt(x)); }
        case 5u: { return -g / (x * x); }
        case 6u: { let t = tanh(x); return g * (1.0 - t * t); }
        case 7u: { let q = sigmoid(x); return g * q * (1.0 - q); }
        case 8u: { return select(0.0, g, x > 0.0); }
        case 9u: { let q = sigmoid(x); return g * q * (1.0 + x * (1.0 - q)); }
        case 10u: {
            let t = tanh(gelu_inner(x));
            let du = GELU_C * (1.0 + 3.0 * 0.044715 * x * x);
            return g * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du);
        }
        case 11u: { return g * (x + x); }
        case 12u: { return select(select(0.0, -g, x < 0.0), g, x > 0.0); }
        case 13u: { return g; }
        case 14u: { return g * s; }
        case 15u: { return g * s * powf(x, s - 1.0); }
        case 16u: { return select(0.0, g, x > s); }
        default: { return g; }
    }
}

fn binary_op(a: f32, b: f32) -> f32 {
    switch OP {
        case 0u: { return a + b; }
        case 1u: { return a - b; }
        case 2u: { return a * b; }
        case 3u: { return a / b; }
        case 4u: { return fmax(a, b); }
        case 5u: { return fmin(a, b); }
        case 6u: { return powf(a, b); }
        case 7u: { return select(0.0, 1.0, a == b); }
        case 8u: { return select(0.0, 1.0, a > b); }
        default: { return select(0.0, 1.0, a >= b); }
    }
}

fn at(i: u32, view: u32) -> u32 {
    return view_offset(i, p(1u), SHAPE, view);
}

@compute @workgroup_size(256)
fn unary(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wid, nwg, lid);
    if i >= p(0u) { return; }
    OUT[at(i, V_OUT)] = unary_op(A[at(i, V_A)], pf(3u));
}

@compute @workgroup_size(256)
fn unary_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wid, nwg, lid);
    if i >= p(0u) { return; }
    OUT[at(i, V_OUT)] = unary_grad(A[at(i, V_A)], B[at(i, V_B)], pf(3u));
}

@compute @workgroup_size(256)
fn binary(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wid, nwg, lid);
    if i >= p(0u) { return; }
    OUT[at(i, V_OUT)] = binary_op(A[at(i, V_A)], B[at(i, V_B)]);
}

@compute @workgroup_size(256)
fn where_cond(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wid, nwg, lid);
    if i >= p(0u) { return; }
    OUT[at(i, V_OUT)] = select(C[at(i, V_C)], B[at(i, V_B)], A[at(i, V_A)] != 0.0);
}

// Fills the output (contiguous, `numel` long) with the scalar.
@compute @workgroup_size(256)
fn fill(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wid, nwg, lid);
    if i >= p(0u) { return; }
    OUT[i] = pf(3u);
}
