"""Flash attention for Hopper GPUs (H100/H200) in Pallas Mosaic GPU.

The Triton kernels in `flash_attention.py` run on every NVIDIA GPU. On
Hopper, Triton does emit warpgroup MMAs (wgmma: 24-80 in their PTX at the
issue's shape), but every warp both loads blocks (plain async copies, no
TMA) and computes, so loads and softmax wait on each other.
FlashAttention-3 and cuDNN feed wgmma by TMA from a producer warpgroup and
overlap one warpgroup's softmax with another's matmuls. These kernels are
written that way, after JAX's own `attention_mgpu.py` (whose backward has
no causal mask):

- A CTA runs three warpgroups: two compute warpgroups, each owning 64 rows
  of the tile, and a memory warpgroup that streams the other operand's
  blocks through a ring of shared-memory slots with TMA. Load barriers
  say a slot is full; "used" barriers (both compute warpgroups arrive)
  say it may be refilled.
- Forward: the compute warpgroups ping-pong through a schedule barrier,
  so one's softmax overlaps the other's matmuls.
- Backward: one kernel for dq (query tiles, streaming K/V) and one for
  dk/dv (kv tiles, streaming the G query heads' Q, dO, logsumexp and
  delta), so neither needs atomics and GQA never repeats K/V.
- Causal tiles run unmasked blocks, then masked diagonal blocks, and skip
  the rest; heavy (late) tiles launch first. Segment ids are compared as a
  row vector against a column vector.
- Softmax in the log2 domain: exp2(s * scale * log2(e) - max), one
  multiply-add an element; the saved logsumexp is natural-log, as on
  every path. Masked scores are a finite MASKED (see there).

Every mbarrier wait flips a per-thread parity bit, so each warpgroup waits
on every phase of every barrier it uses, in order, even for a block it
then skips: that keeps the parities right, and a warpgroup never releases
a slot before the memory warpgroup has refilled it.

`sim=True` runs these kernels in Pallas's Mosaic GPU interpreter on a CPU:
warpgroups as threads, mbarriers (it fails on a phase a waiting thread
skipped), TMA copies and shared memory as written. The interpreter has no
register layouts, no typed-layout loads and a wgmma without transposed
operands or seeded accumulators, so four helpers take a plain form there,
and only there: `_full` and `_mask` drop layouts, `_load_vec` reads the
ref, and `_mm` is an fp32 dot of the same shared-memory operands.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import mosaic_gpu as plgpu

from emojax.kernels import backend

LOG2E = math.log2(math.e)
LN2 = math.log(2.0)
# Registers a thread: two compute warpgroups at 232 and the memory
# warpgroup at 40 fill a multiprocessor's 64k (128 threads each).
_COMPUTE_REGS, _MEMORY_REGS = 232, 40
# dk/dv holds two [64, E] fp32 accumulators a warpgroup: at E = 128 and
# 232 registers ptxas (sm_90a, `benchmark.py gpu_aot`) spilled 48 bytes a
# thread, at 240 8. 240 + 240 + 32 fill the 64k.
_DKV_COMPUTE_REGS, _DKV_MEMORY_REGS = 240, 32
# A masked (unscaled) score. Not -inf: a row with nothing to attend to
# yet would compute -inf - -inf. Not backend.NEG (-1e30) either: exp2's
# argument s * scale - max is one fused multiply-add, whose unrounded
# product minus the rounded max of a masked row is off by an ulp of 1e29,
# i.e. exp2(+-1e22) = inf. At -1e9 the error is at most 16 (exp2 finite),
# masked scores still underflow to exactly 0 beside any real one, and
# real scores never come near.
MASKED = -1e9
ROW = plgpu.Layout.WGMMA.reduce(1)  # a vector over a tile's rows
COL = plgpu.Layout.WGMMA.reduce(0)  # a vector over a tile's columns


@dataclasses.dataclass(frozen=True)
class Blocks:
  """Tile sizes. Each compute warpgroup owns `rows` rows (64: one wgmma
  M tile); the streamed operand comes in blocks of `fwd_kv` (forward),
  `dq_kv` (dq) and `dkv_q` (dk/dv) through `slots` shared-memory slots."""

  rows: int = 64
  fwd_kv: int = 128
  dq_kv: int = 64
  dkv_q: int = 64
  slots: int = 2

  @property
  def tile(self) -> int:
    """Rows of a CTA: two compute warpgroups."""
    return 2 * self.rows

  @property
  def multiple(self) -> int:
    """T and S must divide by this (the wrapper pads)."""
    return math.lcm(self.tile, self.fwd_kv, self.dq_kv, self.dkv_q)


DEFAULT_BLOCKS = Blocks()


def supports(dtype, E: int) -> bool:
  """Whether these kernels take this input: fp16/bf16, E 64 or 128 (at
  E = 256 the tiles overflow the 227 KiB of shared memory)."""
  return E in (64, 128) and jnp.dtype(dtype) in (
    jnp.dtype(jnp.bfloat16),
    jnp.dtype(jnp.float16),
  )


# --- small helpers --------------------------------------------------------


def _swizzled(shape, dtype):
  """Shared memory for a wgmma operand: 128-byte swizzled tiles."""
  tiling = plgpu.TilingTransform((8, 128 // jnp.dtype(dtype).itemsize))
  return plgpu.SMEM(
    shape, dtype, transforms=(tiling, plgpu.SwizzleTransform(128))
  )


def _load_vec(ref, layout, sim):
  """A [n] shared-memory vector in a wgmma row or column layout."""
  if sim:
    return ref[...]
  return plgpu.load(ref, (), layout=layout)


def _read(x):
  """A shared-memory ref's value (registers pass through)."""
  from jax._src.state import types as state_types

  if isinstance(x, state_types.TransformedRef) or isinstance(
    jax.typeof(x), state_types.AbstractRef
  ):
    return x[...]
  return x


def _mm(*products, sim, during=None):
  """[init + a @ b (b.T if b_t)] for each product (init, a, b, b_t).

  init is an fp32 tile to accumulate onto or the shape of a fresh one; a
  is registers or shared memory, b shared memory. The wgmmas are issued
  together and awaited once; `during` runs after they are issued, before
  any is awaited (the ping-pong hand-over). In the interpreter, whose
  wgmma takes no transposed operand, each is a plain fp32 dot of the same
  operands.
  """
  if sim:
    outs = []
    for init, a, b, b_t in products:
      b_val = _read(b)
      out = jnp.dot(
        _read(a), b_val.T if b_t else b_val, preferred_element_type=jnp.float32
      )
      outs.append(out if isinstance(init, tuple) else init + out)
    if during is not None:
      during()
    return outs

  def issue(acc_refs):
    for acc_ref, (_, a, b, b_t) in zip(acc_refs, products, strict=True):
      plgpu.wgmma(acc_ref, a, plgpu.transpose_ref(b, (1, 0)) if b_t else b)
    if during is not None:
      during()

  inits = [
    _full(init, 0.0, sim) if isinstance(init, tuple) else init
    for init, *_ in products
  ]
  return list(pl.run_state(issue)(tuple(map(plgpu.ACC.init, inits))))


def _full(shape, value, sim):
  """An fp32 tile (2-D) or row vector (1-D) in wgmma layouts."""
  x = jnp.full(shape, value, jnp.float32)
  if sim:  # the interpreter has no layouts
    return x
  return plgpu.layout_cast(x, plgpu.Layout.WGMMA if len(shape) == 2 else ROW)


def _rows(x, shape):
  """A per-row vector broadcast over a tile's columns."""
  return lax.broadcast_in_dim(x, shape, [0])


def _cols(x, shape):
  """A per-column vector broadcast over a tile's rows."""
  return lax.broadcast_in_dim(x, shape, [1])


def _mask(s, causal_at, seg, sim, *, kv_rows=False):
  """s with masked entries at MASKED. causal_at: (row0, col0), the sequence
  positions of the tile's first row and column, when the diagonal crosses
  it, else None; a query sees keys at or before it (rows are keys when
  kv_rows). seg: (row, column) segment tiles, or None."""
  mask = None
  if causal_at is not None:
    row0, col0 = causal_at
    if sim:  # the interpreter has no layouts
      iota = functools.partial(lax.broadcasted_iota, jnp.int32, s.shape)
    else:
      iota = functools.partial(
        plgpu.broadcasted_iota, jnp.int32, s.shape, layout=plgpu.Layout.WGMMA
      )
    rows, cols = iota(0) + row0, iota(1) + col0
    mask = cols >= rows if kv_rows else rows >= cols
  if seg is not None:
    same = seg[0] == seg[1]
    mask = same if mask is None else mask & same
  return s if mask is None else jnp.where(mask, s, MASKED)


def _tile_index(reverse, n_tiles):
  """This CTA's tile, last first if `reverse`. Under a causal mask a query
  tile's work grows with its index (a kv tile's shrinks): launching the
  heavy tiles first lets the light ones fill the last wave."""
  i = lax.axis_index("tile")
  return n_tiles - 1 - i if reverse else i


def _kv_blocks(pos0, n_rows, bk, causal, n_kv):
  """(seen, unmasked) kv blocks of the queries at key positions pos0 ..
  pos0 + n_rows - 1 (all of them without a causal mask)."""
  if not causal:
    return n_kv, n_kv
  unmasked, seen = backend.causal_kv_blocks(pos0, n_rows, bk, n_kv)
  return seen, unmasked


def _write_out(*outs):
  """Each (value, smem, gmem ref): stage the value in shared memory, then
  one TMA store per output, awaited before the kernel ends."""
  for value, smem, _ in outs:
    smem[...] = value
  plgpu.commit_smem()
  for _, smem, gmem in outs:
    plgpu.copy_smem_to_gmem(smem, gmem)
  plgpu.wait_smem_to_gmem(0)


def _call(entry, out_type, grid, sim):
  from jax._src.pallas.mosaic_gpu.interpret import params

  return plgpu.kernel(
    entry,
    out_type=out_type,
    grid=grid,
    grid_names=("heads", "tile", "batch"),
    num_threads=3,
    thread_name="wg",
    compiler_params=plgpu.CompilerParams(approx_math=True),
    interpret=params.InterpretGPUParams() if sim else None,
  )


def _stream(n, slots, load, used):
  """The memory warpgroup: load blocks 0..n-1 into slots round-robin,
  refilling a slot once each of its `used` barriers has completed."""
  for slot in range(slots):
    pl.when(slot < n)(functools.partial(load, slot, slot))

  def wait_used(j):
    for bar in used:
      plgpu.barrier_wait(bar.at[lax.rem(j, slots)])

  @pl.loop(slots, jnp.maximum(n, slots))
  def _(j):
    wait_used(j - slots)
    load(j, lax.rem(j, slots))

  # Wait out the last blocks too: a thread that waits on a barrier must
  # see each of its phases (the interpreter checks it).
  pl.loop(jnp.maximum(n - slots, 0), n)(wait_used)


# --- forward --------------------------------------------------------------


def forward(
  q, k, v, q_seg, kv_seg, *, causal, offset=0, sim, blocks=DEFAULT_BLOCKS
):
  """(o [B, T, H, E], lse [B, H, T] fp32, natural log).

  q [B, T, H, E], k and v [B, S, K, E]; T and S divide by
  `blocks.multiple`. q_seg [B, T] and kv_seg [B, S] int32, or both None:
  a query attends to keys of an equal segment id. Query t sits at key
  position offset + t (the causal mask).
  """
  B, T, H, E = q.shape
  S, K = k.shape[1], k.shape[2]
  G, dtype = H // K, q.dtype
  bq, bk = blocks.rows, blocks.fwd_kv
  n_kv, n_tiles = S // bk, T // blocks.tile
  slots = min(blocks.slots, n_kv)
  use_seg = q_seg is not None
  scale2 = E**-0.5 * LOG2E

  def kernel(refs, smem, bars):
    q_ref, k_ref, v_ref, qs_ref, ks_ref, o_ref, lse_ref = refs
    qo_smem2, k_smem, v_smem, lse_smem2, qs_smem2, ks_smem = smem
    q_bars, k_bars, v_bars, ks_bars, k_used, v_used, sched = bars
    b, h, wg = (lax.axis_index(a) for a in ("batch", "heads", "wg"))
    tile = _tile_index(causal, n_tiles)
    # kv blocks the CTA streams: those its last row sees.
    cta0 = tile * blocks.tile + offset
    n, _ = _kv_blocks(cta0, blocks.tile, bk, causal, n_kv)

    def ping_pong():
      plgpu.barrier_arrive(sched)
      plgpu.barrier_wait(sched)

    @pl.when(wg < 2)
    def _compute():
      plgpu.set_max_registers(_COMPUTE_REGS, action="increase")
      qo_smem, lse_smem = qo_smem2.at[wg], lse_smem2.at[wg]
      row0 = tile * blocks.tile + wg * bq
      rows = pl.ds(row0, bq)
      steps, full = _kv_blocks(row0 + offset, bq, bk, causal, n_kv)
      plgpu.copy_gmem_to_smem(q_ref.at[b, rows, h], qo_smem, q_bars.at[wg])
      q_seg = None
      if use_seg:
        qs_smem = qs_smem2.at[wg]
        plgpu.copy_gmem_to_smem(qs_ref.at[b, rows], qs_smem, q_bars.at[2 + wg])
        plgpu.barrier_wait(q_bars.at[2 + wg])
        q_seg = _load_vec(qs_smem, ROW, sim)
      plgpu.barrier_wait(q_bars.at[wg])

      @pl.when(steps > 0)
      def _():
        plgpu.barrier_wait(k_bars.at[0])

      pl.when(wg == 1)(ping_pong)

      def kv_step(j, carry, masked):
        acc, m, den = carry
        slot = lax.rem(j, slots)

        (s,) = _mm(
          ((bq, bk), qo_smem, k_smem.at[slot], True), sim=sim, during=ping_pong
        )
        seg = None
        if use_seg:
          plgpu.barrier_wait(ks_bars.at[slot])
          kv_seg = _load_vec(ks_smem.at[slot], COL, sim)
          seg = (_rows(q_seg, s.shape), _cols(kv_seg, s.shape))
        plgpu.barrier_arrive(k_used.at[slot])
        s = _mask(s, (row0 + offset, j * bk) if masked else None, seg, sim)
        # Unscaled scores; the scale goes into the max and into exp2's
        # argument, where it fuses into one multiply-add.
        m_new = jnp.maximum(m, s.max(axis=1) * scale2)
        alpha = jnp.exp2(m - m_new)
        p = jnp.exp2(s * scale2 - _rows(m_new, s.shape))
        acc = acc * _rows(alpha, acc.shape)
        den = den * alpha + p.sum(axis=1)
        p16 = p.astype(dtype)
        # (JAX's kernel found this order fastest for E <= 128.)
        acc, den, m_new, p16 = lax.optimization_barrier((acc, den, m_new, p16))
        plgpu.barrier_arrive(sched)  # softmax done
        plgpu.barrier_wait(v_bars.at[slot])
        plgpu.barrier_wait(sched)  # the tensor cores are free
        (acc,) = _mm((acc, p16, v_smem.at[slot], False), sim=sim)

        @pl.when(j + 1 < steps)
        def _():
          plgpu.barrier_wait(k_bars.at[lax.rem(j + 1, slots)])

        plgpu.barrier_arrive(v_used.at[slot])
        return acc, m_new, den

      def drain(j, _):
        # A block the other warpgroup sees and this one does not: take its
        # barrier phases and ping-pong turns without computing.
        slot = lax.rem(j, slots)
        plgpu.barrier_wait(k_bars.at[slot])
        if use_seg:
          plgpu.barrier_wait(ks_bars.at[slot])
        plgpu.barrier_arrive(k_used.at[slot])
        plgpu.barrier_wait(v_bars.at[slot])
        plgpu.barrier_arrive(v_used.at[slot])
        ping_pong()
        ping_pong()

      carry = (
        _full((bq, E), 0.0, sim),
        _full((bq,), MASKED * scale2, sim),
        _full((bq,), 0.0, sim),
      )
      step = functools.partial(kv_step, masked=False)
      carry = lax.fori_loop(0, full, step, carry)
      if causal:
        step = functools.partial(kv_step, masked=True)
        carry = lax.fori_loop(full, steps, step, carry)
        lax.fori_loop(steps, n, drain, None)
      acc, m, den = carry
      pl.when(wg == 0)(ping_pong)

      # A row that saw no key (padding) kept the max of masked scores.
      empty = m < 0.5 * MASKED * scale2
      inv = jnp.where(empty, 0.0, 1.0 / jnp.where(empty, 1.0, den))
      o = (acc * _rows(inv, acc.shape)).astype(dtype)
      lse = jnp.where(empty, 0.0, (m + jnp.log2(den)) * LN2)
      _write_out(
        (o, qo_smem, o_ref.at[b, rows, h]),
        (lse, lse_smem, lse_ref.at[b, h, rows]),
      )

    @pl.when(wg == 2)
    def _memory():
      plgpu.set_max_registers(_MEMORY_REGS, action="decrease")
      kv_head = lax.div(h, G)

      def load(j, slot):
        cols = pl.ds(j * bk, bk)
        plgpu.copy_gmem_to_smem(
          k_ref.at[b, cols, kv_head], k_smem.at[slot], k_bars.at[slot]
        )
        if use_seg:
          plgpu.copy_gmem_to_smem(
            ks_ref.at[b, cols], ks_smem.at[slot], ks_bars.at[slot]
          )
        plgpu.copy_gmem_to_smem(
          v_ref.at[b, cols, kv_head], v_smem.at[slot], v_bars.at[slot]
        )

      _stream(n, slots, load, (k_used, v_used))

  smem = (
    _swizzled((2, bq, E), dtype),
    _swizzled((slots, bk, E), dtype),
    _swizzled((slots, bk, E), dtype),
    plgpu.SMEM((2, bq), jnp.float32),
    plgpu.SMEM((2, bq), jnp.int32) if use_seg else None,
    plgpu.SMEM((slots, bk), jnp.int32) if use_seg else None,
  )
  bars = (
    plgpu.Barrier(num_barriers=4),  # q, then q segments, per warpgroup
    plgpu.Barrier(num_barriers=slots),  # k loaded
    plgpu.Barrier(num_barriers=slots),  # v loaded
    plgpu.Barrier(num_barriers=slots),  # kv segments loaded
    plgpu.Barrier(num_arrivals=2, num_barriers=slots),  # k used
    plgpu.Barrier(num_arrivals=2, num_barriers=slots),  # v used
    plgpu.Barrier(num_arrivals=2),  # ping-pong
  )
  out_type = [
    jax.ShapeDtypeStruct(q.shape, dtype),
    jax.ShapeDtypeStruct((B, H, T), jnp.float32),
  ]
  return _call(
    _entry(
      kernel, smem, bars, name="emojax_flash_fwd", n_in=3, use_seg=use_seg
    ),
    out_type,
    (H, n_tiles, B),
    sim,
  )(*_operands(q, k, v, q_seg, kv_seg))


def _operands(*args):
  """Arguments with absent segments dropped (pallas refs cannot be None)."""
  return [a for a in args if a is not None]


def _entry(kernel, smem, bars, *, name, n_in, use_seg):
  """The kernel's entry: refs in a fixed order, with None for absent
  segments, then shared memory and barriers scoped across warpgroups.
  `name` names the kernel in profiles and compiler dumps."""

  def entry(*refs):
    refs = list(refs)
    if not use_seg:
      refs[n_in:n_in] = [None, None]
    pl.run_scoped(
      lambda *scoped: kernel(refs, *scoped),
      smem,
      bars,
      collective_axes="wg",
    )

  entry.__name__ = name
  return entry


# --- backward -------------------------------------------------------------


def backward_dq(
  q,
  k,
  v,
  do,
  lse,
  delta,
  q_seg,
  kv_seg,
  *,
  causal,
  offset=0,
  sim,
  blocks=DEFAULT_BLOCKS,
):
  """dq [B, T, H, E]. lse, delta: [B, H, T] fp32 (natural-log logsumexp
  and rowsum(o * do)); the rest as `forward`."""
  B, T, H, E = q.shape
  S, K = k.shape[1], k.shape[2]
  G, dtype = H // K, q.dtype
  bq, bk = blocks.rows, blocks.dq_kv
  n_kv, n_tiles = S // bk, T // blocks.tile
  slots = min(blocks.slots, n_kv)
  use_seg = q_seg is not None
  scale, scale2 = E**-0.5, E**-0.5 * LOG2E

  def kernel(refs, smem, bars):
    q_ref, k_ref, v_ref, do_ref, lse_ref, d_ref, qs_ref, ks_ref, dq_ref = refs
    q_smem2, do_smem2, lse_smem2, d_smem2, qs_smem2, k_smem, v_smem, ks_smem = (
      smem
    )
    q_bars, kv_bars, used = bars
    b, h, wg = (lax.axis_index(a) for a in ("batch", "heads", "wg"))
    tile = _tile_index(causal, n_tiles)
    n, _ = _kv_blocks(
      tile * blocks.tile + offset, blocks.tile, bk, causal, n_kv
    )

    @pl.when(wg < 2)
    def _compute():
      plgpu.set_max_registers(_COMPUTE_REGS, action="increase")
      q_smem, do_smem = q_smem2.at[wg], do_smem2.at[wg]
      row0 = tile * blocks.tile + wg * bq
      rows = pl.ds(row0, bq)
      steps, full = _kv_blocks(row0 + offset, bq, bk, causal, n_kv)
      copies = [
        (q_ref.at[b, rows, h], q_smem),
        (do_ref.at[b, rows, h], do_smem),
        (lse_ref.at[b, h, rows], lse_smem2.at[wg]),
        (d_ref.at[b, h, rows], d_smem2.at[wg]),
      ]
      if use_seg:
        copies.append((qs_ref.at[b, rows], qs_smem2.at[wg]))
      for src, dst in copies:
        plgpu.copy_gmem_to_smem(src, dst, q_bars.at[wg])
      plgpu.barrier_wait(q_bars.at[wg])
      lse2 = _load_vec(lse_smem2.at[wg], ROW, sim) * LOG2E
      delta = _load_vec(d_smem2.at[wg], ROW, sim)
      q_seg = _load_vec(qs_smem2.at[wg], ROW, sim) if use_seg else None

      def kv_step(j, dq, masked):
        slot = lax.rem(j, slots)
        plgpu.barrier_wait(kv_bars.at[slot])
        k_blk, v_blk = k_smem.at[slot], v_smem.at[slot]
        s, dp = _mm(
          ((bq, bk), q_smem, k_blk, True),
          ((bq, bk), do_smem, v_blk, True),
          sim=sim,
        )
        seg = None
        if use_seg:
          kv_seg = _load_vec(ks_smem.at[slot], COL, sim)
          seg = (_rows(q_seg, s.shape), _cols(kv_seg, s.shape))
        s = _mask(s, (row0 + offset, j * bk) if masked else None, seg, sim)
        p = jnp.exp2(s * scale2 - _rows(lse2, s.shape))
        ds = p * (dp - _rows(delta, dp.shape))
        (dq,) = _mm((dq, ds.astype(dtype), k_blk, False), sim=sim)
        plgpu.barrier_arrive(used.at[slot])
        return dq

      def drain(j, _):
        slot = lax.rem(j, slots)
        plgpu.barrier_wait(kv_bars.at[slot])
        plgpu.barrier_arrive(used.at[slot])

      dq = _full((bq, E), 0.0, sim)
      dq = lax.fori_loop(0, full, functools.partial(kv_step, masked=False), dq)
      if causal:
        step = functools.partial(kv_step, masked=True)
        dq = lax.fori_loop(full, steps, step, dq)
        lax.fori_loop(steps, n, drain, None)
      _write_out(((dq * scale).astype(dtype), q_smem, dq_ref.at[b, rows, h]))

    @pl.when(wg == 2)
    def _memory():
      plgpu.set_max_registers(_MEMORY_REGS, action="decrease")
      kv_head = lax.div(h, G)

      def load(j, slot):
        cols = pl.ds(j * bk, bk)
        bar = kv_bars.at[slot]
        plgpu.copy_gmem_to_smem(
          k_ref.at[b, cols, kv_head], k_smem.at[slot], bar
        )
        plgpu.copy_gmem_to_smem(
          v_ref.at[b, cols, kv_head], v_smem.at[slot], bar
        )
        if use_seg:
          plgpu.copy_gmem_to_smem(ks_ref.at[b, cols], ks_smem.at[slot], bar)

      _stream(n, slots, load, (used,))

  smem = (
    _swizzled((2, bq, E), dtype),
    _swizzled((2, bq, E), dtype),
    plgpu.SMEM((2, bq), jnp.float32),
    plgpu.SMEM((2, bq), jnp.float32),
    plgpu.SMEM((2, bq), jnp.int32) if use_seg else None,
    _swizzled((slots, bk, E), dtype),
    _swizzled((slots, bk, E), dtype),
    plgpu.SMEM((slots, bk), jnp.int32) if use_seg else None,
  )
  n_copies = 3 if use_seg else 2
  bars = (
    # q, do, lse, delta (and q segments) of each warpgroup.
    plgpu.Barrier(num_arrivals=n_copies + 2, num_barriers=2),
    plgpu.Barrier(num_arrivals=n_copies, num_barriers=slots),  # k, v loaded
    plgpu.Barrier(num_arrivals=2, num_barriers=slots),  # slot used
  )
  return _call(
    _entry(kernel, smem, bars, name="emojax_flash_dq", n_in=6, use_seg=use_seg),
    jax.ShapeDtypeStruct(q.shape, dtype),
    (H, n_tiles, B),
    sim,
  )(*_operands(q, k, v, do, lse, delta, q_seg, kv_seg))


def backward_dkv(
  q,
  k,
  v,
  do,
  lse,
  delta,
  q_seg,
  kv_seg,
  *,
  causal,
  offset=0,
  sim,
  blocks=DEFAULT_BLOCKS,
):
  """(dk, dv) [B, S, K, E]: a CTA owns 2 x 64 kv rows of one kv head and
  streams the query blocks that see them, for each of its G query heads
  in turn at every block."""
  B, T, H, E = q.shape
  S, K = k.shape[1], k.shape[2]
  G, dtype = H // K, q.dtype
  bk, bq = blocks.rows, blocks.dkv_q
  n_q, n_tiles = T // bq, S // blocks.tile
  use_seg = q_seg is not None
  scale, scale2 = E**-0.5, E**-0.5 * LOG2E
  slots = min(blocks.slots, n_q)

  def kernel(refs, smem, bars):
    q_ref, k_ref, v_ref, do_ref, lse_ref, d_ref, qs_ref, ks_ref = refs[:8]
    dk_ref, dv_ref = refs[8:]
    k_smem2, v_smem2, ks_smem2, q_smem, do_smem, lse_smem, d_smem, qs_smem = (
      smem
    )
    kv_bars, q_bars, used = bars
    b, n_head, wg = (lax.axis_index(a) for a in ("batch", "heads", "wg"))
    tile = _tile_index(False, n_tiles)
    # Query blocks streamed per query head: those the tile's first row sees.
    first = 0
    if causal:
      cta0 = tile * blocks.tile
      first, _ = backend.causal_q_blocks(cta0, blocks.tile, bq, n_q, offset)
    per_head = n_q - first

    @pl.when(wg < 2)
    def _compute():
      plgpu.set_max_registers(_DKV_COMPUTE_REGS, action="increase")
      k_smem, v_smem = k_smem2.at[wg], v_smem2.at[wg]
      row0 = tile * blocks.tile + wg * bk
      rows = pl.ds(row0, bk)
      copies = [
        (k_ref.at[b, rows, n_head], k_smem),
        (v_ref.at[b, rows, n_head], v_smem),
      ]
      if use_seg:
        copies.append((ks_ref.at[b, rows], ks_smem2.at[wg]))
      for src, dst in copies:
        plgpu.copy_gmem_to_smem(src, dst, kv_bars.at[wg])
      plgpu.barrier_wait(kv_bars.at[wg])
      kv_seg = _load_vec(ks_smem2.at[wg], ROW, sim) if use_seg else None
      # Query blocks before `mine` see none of these keys; from `unmasked`
      # on every query is at or after every key.
      mine = unmasked = first
      if causal:
        mine, unmasked = backend.causal_q_blocks(row0, bk, bq, n_q, offset)

      # One flat loop per kind of block, over (query block, head) pairs
      # t = i * G + g, heads innermost: nested loops over heads spilled
      # more registers (ptxas).
      def q_step(t, carry, masked):
        dk, dv = carry
        i = lax.div(t, G)
        slot = lax.rem(t - first * G, slots)
        plgpu.barrier_wait(q_bars.at[slot])
        q_blk, do_blk = q_smem.at[slot], do_smem.at[slot]
        s_t, dp_t = _mm(
          ((bk, bq), k_smem, q_blk, True),
          ((bk, bq), v_smem, do_blk, True),
          sim=sim,
        )
        lse2 = _load_vec(lse_smem.at[slot], COL, sim) * LOG2E
        seg = None
        if use_seg:
          q_seg = _load_vec(qs_smem.at[slot], COL, sim)
          seg = (_rows(kv_seg, s_t.shape), _cols(q_seg, s_t.shape))
        causal_at = (row0, i * bq + offset) if masked else None
        s_t = _mask(s_t, causal_at, seg, sim, kv_rows=True)
        p_t = jnp.exp2(s_t * scale2 - _cols(lse2, s_t.shape))
        delta = _load_vec(d_smem.at[slot], COL, sim)
        ds_t = p_t * (dp_t - _cols(delta, dp_t.shape))
        dv, dk = _mm(
          (dv, p_t.astype(dtype), do_blk, False),
          (dk, ds_t.astype(dtype), q_blk, False),
          sim=sim,
        )
        plgpu.barrier_arrive(used.at[slot])
        return dk, dv

      def skip(t, carry):
        slot = lax.rem(t - first * G, slots)
        plgpu.barrier_wait(q_bars.at[slot])
        plgpu.barrier_arrive(used.at[slot])
        return carry

      zeros = _full((bk, E), 0.0, sim)
      carry = lax.fori_loop(first * G, mine * G, skip, (zeros, zeros))
      step = functools.partial(q_step, masked=causal)
      carry = lax.fori_loop(mine * G, unmasked * G, step, carry)
      step = functools.partial(q_step, masked=False)
      dk, dv = lax.fori_loop(unmasked * G, n_q * G, step, carry)
      _write_out(
        ((dk * scale).astype(dtype), k_smem, dk_ref.at[b, rows, n_head]),
        (dv.astype(dtype), v_smem, dv_ref.at[b, rows, n_head]),
      )

    @pl.when(wg == 2)
    def _memory():
      plgpu.set_max_registers(_DKV_MEMORY_REGS, action="decrease")

      def load(t, slot):  # the t-th (query block, head) pair from `first`
        h = n_head * G + lax.rem(t, G)
        rows = pl.ds((first + lax.div(t, G)) * bq, bq)
        bar = q_bars.at[slot]
        plgpu.copy_gmem_to_smem(q_ref.at[b, rows, h], q_smem.at[slot], bar)
        plgpu.copy_gmem_to_smem(do_ref.at[b, rows, h], do_smem.at[slot], bar)
        plgpu.copy_gmem_to_smem(lse_ref.at[b, h, rows], lse_smem.at[slot], bar)
        plgpu.copy_gmem_to_smem(d_ref.at[b, h, rows], d_smem.at[slot], bar)
        if use_seg:
          plgpu.copy_gmem_to_smem(qs_ref.at[b, rows], qs_smem.at[slot], bar)

      _stream(G * per_head, slots, load, (used,))

  smem = (
    _swizzled((2, bk, E), dtype),
    _swizzled((2, bk, E), dtype),
    plgpu.SMEM((2, bk), jnp.int32) if use_seg else None,
    _swizzled((slots, bq, E), dtype),
    _swizzled((slots, bq, E), dtype),
    plgpu.SMEM((slots, bq), jnp.float32),
    plgpu.SMEM((slots, bq), jnp.float32),
    plgpu.SMEM((slots, bq), jnp.int32) if use_seg else None,
  )
  bars = (
    # k, v (and kv segments) of each warpgroup.
    plgpu.Barrier(num_arrivals=3 if use_seg else 2, num_barriers=2),
    # q, do, lse, delta (and q segments) of a slot.
    plgpu.Barrier(num_arrivals=5 if use_seg else 4, num_barriers=slots),
    plgpu.Barrier(num_arrivals=2, num_barriers=slots),  # slot used
  )
  kv_type = jax.ShapeDtypeStruct(k.shape, dtype)
  return _call(
    _entry(
      kernel, smem, bars, name="emojax_flash_dkv", n_in=6, use_seg=use_seg
    ),
    [kv_type, kv_type],
    (K, n_tiles, B),
    sim,
  )(*_operands(q, k, v, do, lse, delta, q_seg, kv_seg))
