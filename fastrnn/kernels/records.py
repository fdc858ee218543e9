"""The named records the kernels take: parameters, the training state, the buffers every
family has (each family's own record, in its kernel file, adds its own), the registry of
the families' kernels, and the path a configuration runs.

Dimensions: B streams, T unroll length, V vocabulary, H hidden, L layers, G gates (1 rnn,
3 gru, 4 lstm), N parameters in all, S characters per stream, W threads (os.cpu_count()).
The trainer allocates every array once and the kernels borrow them.
"""
from collections import namedtuple

from .jit import jit

# Parameters, and in the same layout their gradients and each optimizer memory: views
# into one flat buffer (N,), in this order, so clipping, norms and the optimizer are
# single loops over it.
Params = namedtuple("Params", [
    "Wemb",  # (V, G*H)      layer 0's input weights, a row per character (one-hot input)
    "Wxh",   # (L-1, G*H, H) input weights of layers 1..L-1
    "Whh",   # (L, G*H, H)   recurrent weights
    "bxh",   # (L, G*H)      input-side biases (the rnn's one bias, min-char-rnn's bh)
    "bhh",   # (L, G*H)      hidden-side biases; (L, 0) for the rnn, which has one
    "Why",   # (V, H)        output weights
    "by",    # (V,)          output bias
])

# What training changes, besides the buffers.
Net = namedtuple("Net", [
    "P",       # Params
    "G",       # Params of the gradients
    "theta",   # (N,) the flat buffer behind P
    "grad",    # (N,) the flat buffer behind G
    "memory",  # (2, N) the optimizer's memory (Adagrad's, RMSprop's or Adam's two moments)
])

# The training's data and settings.
Training = namedtuple("Training", [
    "data",    # (B, S) the training text's ids as B streams: uint8, or uint16 for a
               # vocabulary over 256 (encoding.id_dtype; compiled per dtype)
    "cursor",  # (2,) int64 [data pointer, iteration], advanced in place
    "rng",     # (1,) uint64 the generator's state (dropout, resets)
    "hyper",   # (HYPER,) the optimizer's settings in the model dtype (kernels.optim)
    "drop",    # float: dropout probability between layers
    "resets",  # float: the chance that a stream's carried state is zeroed at the start
               # of a window (0.0: only when a pass begins, as min-char-rnn)
])

# data.records: paragraphs. Training.data is one of these instead of the (B, S) streams
# (so that stream mode compiles none of its code): each paragraph is read from a zero state
# in windows that never cross its end, a stream taking the next paragraph of the order
# when its own has ended (kernels.paragraphs).
Paragraphs = namedtuple("Paragraphs", [
    "ids",      # (C,) the paragraphs' ids one after another, each ending in a blank
                # line: uint8, or uint16 for a vocabulary over 256 (as Training.data)
    "starts",   # (P+1,) int64 paragraph i is ids[starts[i]:starts[i+1]]
    "order",    # (P,) int64 the order of this pass (in training, shuffled every pass)
    "at",       # (B, 2) int64 each stream's paragraph (-1: none yet) and the place of
                # its next input in it
    "window",   # (3,) int64 [the next place in order, the steps of the window, its
                # targets]
    "rng",      # (1,) uint64 the shuffle's generator state (splitmix64)
    "targets",  # Masked: the window's targets
    "steps",    # (K,) int64 the steps of each window of a call, by its number in the
                # call (window's slot is rewritten by a thread that runs ahead of the
                # others; these are not, so every thread reads its window's steps here)
])
# Targets of which some are none, for the output layer: a type of its own, so that the
# stream mode's output layer compiles without the test.
Masked = namedtuple("Masked", [
    "ids",  # (T, B) int32 the targets; -1 where a stream has none (its paragraph ended)
])

# Buffers every family has. Rows of (T, B, ...) buffers are ordered (t, b).
SHARED_BUFFERS = [
    "hs",     # (L, T+1, B, H) states; hs[:, 0] carried in from the previous window
    "xin",    # (max(L-1, 1), T, B, H) the dropped-out inputs of layers 1..L-1
    "masks",  # (max(L-1, 1), T, B, H) their dropout masks
    "ys",     # (T, B, V) logits, then the softmax gradients
    "dh",     # (T, B, H) dLoss/dh of the layer being back-propagated
    "dx",     # (T, B, H) the same for the layer below
    "xs",     # (T+1, B) int32 the window's ids
    "part",   # (W, max(G*H, V), H) each item's share of a weight gradient
    "spart",  # (W, G*H) each item's share of a one-stream BPTT step
    "packs",  # (L, packed) each layer's Whh packed for batched steps (kernels.step)
    "sums",   # (W,) float64 each item's share of a loss or a squared norm
    "flags",  # (team.flag_count(W),) int64 the team's counters
]

# Each family's forward and backward steps by the type of its buffers (SHARED_BUFFERS
# and its own), registered by its kernel file (kernels.rnn, gru, lstm); kernels.entries
# dispatches on it. A new family is a kernel file that registers itself here.
FAMILY_KERNELS = {}


def register_family(Buffers, forward, backward):
    """Dispatch buffers of type Buffers to these forward and backward steps."""
    FAMILY_KERNELS[Buffers] = (forward, backward)


# The path a configuration runs, chosen in Python and handed to the kernels as the
# type of an empty record, so that Numba compiles that path's code and no other.
Exact = namedtuple("Exact", [])      # float64, min-char-rnn's arithmetic op by op
OneStream = namedtuple("OneStream", [])  # one stream: products over all steps, gemv steps
Batched = namedtuple("Batched", [])  # many streams: every step over packed weights
# Many streams with bf16 operands (train.precision: bf16): every matrix product over
# packed weights (kernels.panels), its operands rounded to bf16 pairs (kernels.bfloat)
# into this record's scratch, its sums float32. The weights, gradients, optimizer and
# cell arithmetic stay float32.
Mixed = namedtuple("Mixed", [
    "a",  # (panels.mixed_sizes()[0],) uint32 a product's left operand (states or
          # gradients) in bf16 pairs
    "w",  # (panels.mixed_sizes()[1],) uint32 its right operand (weights, or states)
          # packed in bf16 pairs
])

@jit
def whh_offset(P):
    """Where P.Whh starts in the flat buffer (the fields are in buffer order)."""
    return P.Wemb.size + P.Wxh.size
