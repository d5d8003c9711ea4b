'use strict'
// lib/long-lived.ts: how the closes of long-lived connections are spread over the window.
const { test } = require('tap')
const { spreadMoments } = require('../../dist/lib/long-lived')

test('spreadMoments: one moment per close, each inside its own slot of the window, in order', async (t) => {
  t.same(spreadMoments(0, 1000), [], 'nothing to close')
  const moments = spreadMoments(50, 5000)
  t.equal(moments.length, 50)
  moments.forEach((moment, i) => {
    if (moment < i * 100 || moment > (i + 1) * 100) t.fail(`moment ${i} (${moment}) outside its slot [${i * 100}, ${(i + 1) * 100}]`)
  })
  t.same([...moments].sort((a, b) => a - b), moments, 'in order')
  t.ok(moments.every((m) => m >= 0 && m <= 5000), 'inside the window')
})

test('spreadMoments: jittered within the slot, never past the window', async (t) => {
  t.same(spreadMoments(4, 400, () => 0), [0, 100, 200, 300], 'random 0: the start of each slot')
  t.same(spreadMoments(4, 400, () => 0.5), [50, 150, 250, 350], 'random 0.5: the middle')
  t.same(spreadMoments(4, 400, () => 0.9999999999), spreadMoments(4, 400, () => 0.9999999999).map((m) => Math.min(m, 400)), 'never past the window')
  t.same(spreadMoments(3, 0), [0, 0, 0], 'a window of 0: all at once')
  const a = spreadMoments(20, 2000)
  const b = spreadMoments(20, 2000)
  t.notSame(a, b, 'two drains do not close in lockstep')
})

test('spreadMoments: no 100 ms bucket gets more than its share (+1 for a slot across two buckets)', async (t) => {
  for (const [count, window] of [[60, 2500], [1000, 15000], [7, 200]]) {
    const buckets = new Map()
    for (const m of spreadMoments(count, window)) buckets.set(Math.floor(m / 100), (buckets.get(Math.floor(m / 100)) || 0) + 1)
    const share = Math.ceil((count * 100) / window) + 1
    t.ok(Math.max(...buckets.values()) <= share, `${count} closes over ${window} ms: at most ${Math.max(...buckets.values())} per 100 ms (bound ${share})`)
  }
})
