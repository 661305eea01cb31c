#!/usr/bin/env node
// Checks a CAR written by billet with the reference IPLD implementations,
// independently of billet's Rust code.
//
//   node check-car.mjs FILE.car [EXPECT.json] [--closed]
//
// Always: every block's codec is raw, dag-pb or dag-cbor; every block hashes
// to its CID; every dag-cbor and dag-pb block re-encodes to identical bytes.
// With EXPECT.json ({"bodies": [{"cid", "file", "md5", "sha256"}],
// "mst": {"root", "pairs": [[key, cid], ...]}}): ipfs-unixfs-exporter reads
// each body by its CID and it must equal the file byte for byte and match
// the digests; the MST under "root" is walked and must hold exactly "pairs"
// in order. With {"objects": {"files": {key: path}}}, the CAR's root is a
// bucket commit and every object's body, found through the MST and its
// manifest, must equal the given file. With --closed, the CAR must be a
// closed DAG: every link of every dag-cbor and dag-pb block names a block
// the CAR holds. Exit 1 on any problem.

import fs from 'node:fs'
import { createHash } from 'node:crypto'
import { CarBlockIterator } from '@ipld/car/iterator'
import * as dagCbor from '@ipld/dag-cbor'
import * as dagPb from '@ipld/dag-pb'
import * as raw from 'multiformats/codecs/raw'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { exporter } from 'ipfs-unixfs-exporter'

const args = process.argv.slice(2)
const closed = args.includes('--closed')
const [file, expectFile] = args.filter((a) => a !== '--closed')
if (!file) {
  console.error('usage: node check-car.mjs FILE.car [EXPECT.json] [--closed]')
  process.exit(2)
}

const problems = []
const blocks = new Map()
const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i])

const reader = await CarBlockIterator.fromIterable(fs.createReadStream(file))
let count = 0
for await (const { cid, bytes } of reader) {
  count++
  if (![raw.code, dagPb.code, dagCbor.code].includes(cid.code)) {
    problems.push(`${cid}: unexpected codec 0x${cid.code.toString(16)}`)
  }
  const digest = await sha256.digest(bytes)
  if (!equal(digest.bytes, cid.multihash.bytes)) {
    problems.push(`${cid}: bytes do not hash to the CID`)
  }
  if (cid.code === dagCbor.code && !equal(dagCbor.encode(dagCbor.decode(bytes)), bytes)) {
    problems.push(`${cid}: dag-cbor does not re-encode to the same bytes`)
  }
  if (cid.code === dagPb.code && !equal(dagPb.encode(dagPb.decode(bytes)), bytes)) {
    problems.push(`${cid}: dag-pb does not re-encode to the same bytes`)
  }
  blocks.set(cid.toString(), bytes)
}

const store = {
  get (cid) {
    const bytes = blocks.get(cid.toString())
    if (!bytes) throw new Error(`block ${cid} is missing from the CAR`)
    return (function * () { yield bytes })()
  }
}

let bodies = 0
let keys = 0
if (expectFile) {
  const expect = JSON.parse(fs.readFileSync(expectFile, 'utf8'))
  for (const body of expect.bodies ?? []) {
    const want = fs.readFileSync(body.file)
    const entry = await exporter(CID.parse(body.cid), store)
    const parts = []
    for await (const chunk of entry.content()) parts.push(chunk)
    const got = Buffer.concat(parts)
    if (!got.equals(want)) {
      problems.push(`body ${body.cid}: exporter returned ${got.length} bytes that differ from ${body.file} (${want.length} bytes)`)
    }
    const md5 = createHash('md5').update(got).digest('hex')
    const sha = createHash('sha256').update(got).digest('hex')
    if (body.md5 && md5 !== body.md5) problems.push(`body ${body.cid}: MD5 ${md5}, billet said ${body.md5}`)
    if (body.sha256 && sha !== body.sha256) problems.push(`body ${body.cid}: SHA-256 ${sha}, billet said ${body.sha256}`)
    bodies++
  }
  if (expect.mst) {
    const got = []
    walk(CID.parse(expect.mst.root), got)
    const want = expect.mst.pairs
    if (got.length !== want.length) {
      problems.push(`MST holds ${got.length} keys, expected ${want.length}`)
    }
    for (let i = 0; i < Math.min(got.length, want.length); i++) {
      if (got[i][0] !== want[i][0] || got[i][1] !== want[i][1]) {
        problems.push(`MST entry ${i}: got ${JSON.stringify(got[i])}, expected ${JSON.stringify(want[i])}`)
        break
      }
    }
    keys = got.length
  }
}

// {"objects": {"files": {key: path}}}: the CAR's root is a bucket commit;
// every key of the MST under its `data` whose manifest has a body must be
// listed, and the exporter's bytes for that body must equal the file.
let objects = 0
if (expectFile) {
  const expect = JSON.parse(fs.readFileSync(expectFile, 'utf8'))
  if (expect.objects) {
    const header = await CarBlockIterator.fromIterable(fs.createReadStream(file))
    const [root] = await header.getRoots()
    const commit = dagCbor.decode(store.get(root).next().value)
    const pairs = []
    walk(commit.data, pairs)
    const files = expect.objects.files
    for (const [key, manifestCid] of pairs) {
      const manifest = dagCbor.decode(store.get(CID.parse(manifestCid)).next().value)
      if (!manifest.body) continue
      if (!(key in files)) {
        problems.push(`${key}: in the CAR's MST but no file was given for it`)
        continue
      }
      const entry = await exporter(manifest.body, store)
      const parts = []
      for await (const chunk of entry.content()) parts.push(chunk)
      const got = Buffer.concat(parts)
      const want = fs.readFileSync(files[key])
      if (!got.equals(want)) {
        problems.push(`${key}: body ${manifest.body} has ${got.length} bytes that differ from GetObject's ${want.length}`)
      }
      if (got.length !== manifest.size) {
        problems.push(`${key}: body is ${got.length} bytes, the manifest says ${manifest.size}`)
      }
      objects++
    }
    const live = new Set(pairs.map(([k]) => k))
    for (const key of Object.keys(files)) {
      if (!live.has(key)) problems.push(`${key}: GetObject returned it but the CAR's MST does not hold it`)
    }
  }
}

// In-order walk of an atproto-format MST node: {l, e: [{p, k, v, t}]}.
function walk (cid, out) {
  const node = dagCbor.decode(store.get(cid).next().value)
  if (node.l) walk(node.l, out)
  let prev = new Uint8Array(0)
  for (const e of node.e) {
    const key = new Uint8Array(e.p + e.k.length)
    key.set(prev.subarray(0, e.p))
    key.set(e.k, e.p)
    out.push([Buffer.from(key).toString('utf8'), e.v.toString()])
    prev = key
    if (e.t) walk(e.t, out)
  }
}

// Every link a dag-cbor value holds (CIDs anywhere inside it).
function linksOf (value, out) {
  const cid = CID.asCID(value)
  if (cid) {
    out.push(cid)
  } else if (Array.isArray(value)) {
    for (const v of value) linksOf(v, out)
  } else if (value && typeof value === 'object' && !(value instanceof Uint8Array)) {
    for (const v of Object.values(value)) linksOf(v, out)
  }
  return out
}

let links = 0
if (closed) {
  for (const [key, bytes] of blocks) {
    const cid = CID.parse(key)
    let out = []
    if (cid.code === dagCbor.code) out = linksOf(dagCbor.decode(bytes), [])
    if (cid.code === dagPb.code) out = dagPb.decode(bytes).Links.map((l) => l.Hash)
    for (const l of out) {
      links++
      if (!blocks.has(l.toString())) problems.push(`${cid} links ${l}, which the CAR does not hold`)
    }
  }
}

for (const p of problems) console.error(p)
if (closed) console.log(`closed: ${links} links, each to a block the CAR holds`)
console.log(`${count} blocks, ${bodies} bodies, ${keys} MST keys, ${objects} objects checked; ${problems.length} problems`)
process.exit(problems.length ? 1 : 0)
