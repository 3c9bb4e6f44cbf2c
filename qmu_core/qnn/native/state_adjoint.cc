// QmuStateAdjoint: <Z_i> of U(theta)|psi> and the Adjoint gradients of sum_i g_i <Z_i>, starting
// from given states |psi> instead of |0...0>, for M models at once.
//
// Why: TFQ's programs start from |0...0>, so an amplitude-encoded record brings its 2^n - 1
// state-preparation rotations and 2^n - 2 CNOTs into every TFQ call (parsed from a serialized
// program, simulated forward and undone twice by TFQ's Adjoint differentiator). Here the state is
// an input: only the weight ansatz is simulated. The gates are applied by qsim (its header-only
// library, the simulator behind TFQ), the Adjoint method is the one of TFQ's `tfq_adj_grad` op
// (Jones & Gacon 2020), with exact derivative matrices instead of finite differences.
//
// Inputs
//   states   float32 (M, B, 2^n)  real amplitudes of each record's state, qubit 0 the most
//                                significant bit of the index (Cirq's order)
//   theta    float32 (M, P)       weights of each model
//   gates    int32   (G, 4)       the ansatz in time order: (kind, qubit a, qubit b, parameter)
//                                  kind 0  PhasedXPowGate(phase_exponent = theta[p] / pi,
//                                          exponent = theta[p + 1] / pi) on qubit a
//                                  kind 1  ZPowGate(exponent = theta[p] / pi) on qubit a
//                                  kind 2  CNOT, control a, target b (p unused)
//   upstream float32 (M, B, n)    g: the weight of each <Z_i> in the differentiated sum
// Outputs
//   expectations float32 (M, B, n)  <Z_i> of U(theta_m)|psi_mb>
//   d_theta      float32 (M, B, P)  d/dtheta of sum_i g_mbi <Z_i>_mb, per record
//   d_states     float32 (M, B, 2^n) d/dpsi of the same sum (real part: the states are real)
#include <cmath>
#include <complex>
#include <cstdint>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/work_sharder.h"

#include "lib/gate_appl.h"
#include "lib/gates_cirq.h"
#include "lib/seqfor.h"
#include "lib/simulator_basic.h"
#include "lib/statespace_basic.h"

namespace qmu {

using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;

using Simulator = qsim::SimulatorBasic<const qsim::SequentialFor&, float>;
using StateSpace = Simulator::StateSpace;
using State = StateSpace::State;
using Gate = qsim::Cirq::GateCirq<float>;
using cplx = std::complex<double>;

enum Kind { kPhasedX = 0, kZPow = 1, kCnot = 2 };

// A 2x2 matrix as qsim wants it: row-major, (re, im) interleaved.
static qsim::Matrix<float> Mat(cplx a, cplx b, cplx c, cplx d) {
  return {float(a.real()), float(a.imag()), float(b.real()), float(b.imag()),
          float(c.real()), float(c.imag()), float(d.real()), float(d.imag())};
}

// The gate and its derivative matrices for one model's weights.
struct Step {
  Gate gate;
  std::vector<Gate> derivatives;  // d gate / d theta[param + k]
  int param;                      // -1: no weights
};

static std::vector<Step> Build(const int32_t* gates, int n_gates, int n_qubits,
                               const float* theta) {
  std::vector<Step> steps;
  steps.reserve(n_gates);
  const cplx i1(0.0, 1.0);
  for (int g = 0; g < n_gates; ++g) {
    const int32_t* row = gates + 4 * g;
    // qsim orders qubits the other way round: Cirq's qubit 0 is qsim's qubit n - 1.
    const unsigned qa = unsigned(n_qubits - 1 - row[1]);
    const int p = row[3];
    Step s;
    s.param = -1;
    if (row[0] == kPhasedX) {
      // Z^pe X^ex Z^-pe with a = pi pe, b = pi ex (Cirq's matrix, no global shift):
      // [[(1+e^ib)/2, (1-e^ib)/2 e^-ia], [(1-e^ib)/2 e^ia, (1+e^ib)/2]]
      const double a = theta[p], b = theta[p + 1];
      const cplx eb = std::exp(i1 * b), ea = std::exp(i1 * a), ema = std::exp(-i1 * a);
      const cplx d = (1.0 + eb) / 2.0, o = (1.0 - eb) / 2.0;
      s.gate = qsim::Cirq::MatrixGate1<float>::Create(0, qa, Mat(d, o * ema, o * ea, d));
      s.derivatives.push_back(qsim::Cirq::MatrixGate1<float>::Create(
          0, qa, Mat(0.0, -i1 * o * ema, i1 * o * ea, 0.0)));  // d/da
      const cplx db = i1 * eb / 2.0;
      s.derivatives.push_back(qsim::Cirq::MatrixGate1<float>::Create(
          0, qa, Mat(db, -db * ema, -db * ea, db)));  // d/db
      s.param = p;
    } else if (row[0] == kZPow) {
      const double w = theta[p];
      const cplx ew = std::exp(i1 * w);
      s.gate = qsim::Cirq::MatrixGate1<float>::Create(0, qa, Mat(1.0, 0.0, 0.0, ew));
      s.derivatives.push_back(
          qsim::Cirq::MatrixGate1<float>::Create(0, qa, Mat(0.0, 0.0, 0.0, i1 * ew)));
      s.param = p;
    } else {
      const unsigned qb = unsigned(n_qubits - 1 - row[2]);
      s.gate = qsim::Cirq::CXPowGate<float>::Create(0, qa, qb, 1.0f);
    }
    steps.push_back(std::move(s));
  }
  return steps;
}

class StateAdjointOp : public OpKernel {
 public:
  explicit StateAdjointOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& states = context->input(0);
    const Tensor& theta = context->input(1);
    const Tensor& gates = context->input(2);
    const Tensor& upstream = context->input(3);
    OP_REQUIRES(context, states.dims() == 3,
                tensorflow::errors::InvalidArgument("states must be (M, B, 2^n), got rank ",
                                                    states.dims()));
    const int64_t m_count = states.dim_size(0), b_count = states.dim_size(1);
    const int64_t dim = states.dim_size(2);
    int n = 0;
    while ((int64_t{1} << n) < dim) ++n;
    OP_REQUIRES(context, (int64_t{1} << n) == dim && n >= 1 && n <= 20,
                tensorflow::errors::InvalidArgument(
                    "the state width must be 2^n with 1 <= n <= 20, got ", dim));
    OP_REQUIRES(context, theta.dims() == 2 && theta.dim_size(0) == m_count,
                tensorflow::errors::InvalidArgument("theta must be (M, P) with M = ", m_count));
    OP_REQUIRES(context, gates.dims() == 2 && gates.dim_size(1) == 4,
                tensorflow::errors::InvalidArgument("gates must be (G, 4)"));
    OP_REQUIRES(context,
                upstream.dims() == 3 && upstream.dim_size(0) == m_count &&
                    upstream.dim_size(1) == b_count && upstream.dim_size(2) == n,
                tensorflow::errors::InvalidArgument("upstream must be (M, B, n) = (", m_count,
                                                    ", ", b_count, ", ", n, ")"));
    const int64_t p_count = theta.dim_size(1);
    const int n_gates = int(gates.dim_size(0));
    const int32_t* gate_rows = gates.flat<int32_t>().data();
    for (int g = 0; g < n_gates; ++g) {
      const int32_t* row = gate_rows + 4 * g;
      const int width = row[0] == kPhasedX ? 2 : (row[0] == kZPow ? 1 : 0);
      OP_REQUIRES(context, row[0] >= 0 && row[0] <= 2,
                  tensorflow::errors::InvalidArgument("gate ", g, ": unknown kind ", row[0]));
      OP_REQUIRES(context, row[1] >= 0 && row[1] < n && (row[0] != kCnot || (row[2] >= 0 && row[2] < n && row[2] != row[1])),
                  tensorflow::errors::InvalidArgument("gate ", g, ": qubit out of range for n = ", n));
      OP_REQUIRES(context, width == 0 || (row[3] >= 0 && row[3] + width <= p_count),
                  tensorflow::errors::InvalidArgument("gate ", g, ": parameter ", row[3],
                                                      " out of range for P = ", p_count));
    }

    Tensor* ev_out = nullptr;
    Tensor* dtheta_out = nullptr;
    Tensor* dstate_out = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, TensorShape({m_count, b_count, n}), &ev_out));
    OP_REQUIRES_OK(context,
                   context->allocate_output(1, TensorShape({m_count, b_count, p_count}), &dtheta_out));
    OP_REQUIRES_OK(context, context->allocate_output(2, TensorShape({m_count, b_count, dim}), &dstate_out));

    const float* psi = states.flat<float>().data();
    const float* w = theta.flat<float>().data();
    const float* g_up = upstream.flat<float>().data();
    float* ev = ev_out->flat<float>().data();
    float* dtheta = dtheta_out->flat<float>().data();
    float* dstate = dstate_out->flat<float>().data();

    auto work = [&](int64_t start, int64_t end) {
      qsim::SequentialFor seq(1);
      Simulator sim(seq);
      StateSpace ss(seq);
      State sv = ss.Create(n), lam = ss.Create(n), tmp = ss.Create(n);
      int64_t built_for = -1;
      std::vector<Step> steps;
      std::vector<float> zsum(dim);
      for (int64_t r = start; r < end; ++r) {
        const int64_t m = r / b_count;
        if (m != built_for) {
          steps = Build(gate_rows, n_gates, n, w + m * p_count);
          built_for = m;
        }
        // |psi>, forward through the ansatz
        ss.SetAllZeros(sv);
        const float* x = psi + r * dim;
        for (int64_t s = 0; s < dim; ++s) StateSpace::SetAmpl(sv, uint64_t(s), x[s], 0.0f);
        for (const Step& st : steps) qsim::ApplyGate(sim, st.gate, sv);
        // <Z_i> and lambda = (sum_i g_i Z_i)|phi>; Cirq qubit i is bit n-1-i of the index
        const float* g = g_up + r * n;
        float* e = ev + r * n;
        for (int i = 0; i < n; ++i) e[i] = 0.0f;
        ss.SetAllZeros(lam);
        for (int64_t s = 0; s < dim; ++s) {
          const std::complex<float> a = StateSpace::GetAmpl(sv, uint64_t(s));
          const float prob = std::norm(a);
          float zg = 0.0f;
          for (int i = 0; i < n; ++i) {
            const float z = ((s >> (n - 1 - i)) & 1) ? -1.0f : 1.0f;
            e[i] += z * prob;
            zg += z * g[i];
          }
          StateSpace::SetAmpl(lam, uint64_t(s), a * zg);
        }
        // backward: undo each gate; a gate with weights contributes 2 Re <lam|dG|phi_before>
        float* dt = dtheta + r * p_count;
        for (int64_t k = 0; k < p_count; ++k) dt[k] = 0.0f;
        for (int j = int(steps.size()) - 1; j >= 0; --j) {
          const Step& st = steps[j];
          qsim::ApplyGateDagger(sim, st.gate, sv);
          for (size_t k = 0; k < st.derivatives.size(); ++k) {
            ss.Copy(sv, tmp);
            qsim::ApplyGate(sim, st.derivatives[k], tmp);
            dt[st.param + k] += float(2.0 * ss.RealInnerProduct(lam, tmp));
          }
          qsim::ApplyGateDagger(sim, st.gate, lam);
        }
        // lam is now U^dag O U |psi>: d/dpsi <psi|U^dag O U|psi> = 2 Re(lam) for real psi
        float* ds = dstate + r * dim;
        for (int64_t s = 0; s < dim; ++s) ds[s] = 2.0f * StateSpace::GetAmpl(lam, uint64_t(s)).real();
      }
    };
    const int64_t cost = int64_t(n_gates + 4) * dim * 24;
    auto* threads = context->device()->tensorflow_cpu_worker_threads();
    tensorflow::Shard(threads->num_threads, threads->workers, m_count * b_count, cost, work);
  }
};

REGISTER_KERNEL_BUILDER(Name("QmuStateAdjoint").Device(tensorflow::DEVICE_CPU), StateAdjointOp);

REGISTER_OP("QmuStateAdjoint")
    .Input("states: float")
    .Input("theta: float")
    .Input("gates: int32")
    .Input("upstream: float")
    .Output("expectations: float")
    .Output("d_theta: float")
    .Output("d_states: float")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      tensorflow::shape_inference::ShapeHandle states, theta, upstream;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &states));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 2, &theta));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(3), 3, &upstream));
      auto m = c->Dim(states, 0), b = c->Dim(states, 1);
      c->set_output(0, c->MakeShape({m, b, c->Dim(upstream, 2)}));
      c->set_output(1, c->MakeShape({m, b, c->Dim(theta, 1)}));
      c->set_output(2, states);
      return absl::OkStatus();
    });

}  // namespace qmu
