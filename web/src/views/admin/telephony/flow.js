// The IVR flow schema as the structured editor shows it (src/hotline/ivr/flow.py): each node
// type's fields in the order an admin fills them in, and the conversion between a stored
// definition and the editor's model (options, values and rules as rows, to add and remove).

const prompt = (k, req = false) => ({ k, kind: 'prompt', req })
const node = (k, req = true) => ({ k, kind: 'node', req })
// `omit`: left empty, the field is left out and takes the schema's default (it cannot be
// "none"); any other optional field left empty is sent as null ("none").
const text = (k, req = false, placeholder = '', omit = false) => ({ k, kind: 'text', req, placeholder, omit })
const number = (k, min, max, step, nullable = false) => ({ k, kind: 'number', min, max, step, omit: !nullable })

export const TYPES = {
  menu: [prompt('prompt', true), { k: 'options', kind: 'options', req: true }, node('on_failure'), number('timeout', 0.5, 3600, 0.5), number('retries', 0, 9, 1), prompt('invalid_prompt'), prompt('timeout_prompt')],
  play: [prompt('prompt', true), node('next')],
  collect: [prompt('prompt', true), text('variable', true, 'account'), node('next'), node('on_failure'), number('min_digits', 1, 64, 1), number('max_digits', 1, 64, 1), { k: 'terminator', kind: 'terminator' }, number('timeout', 0.5, 3600, 0.5), number('digit_timeout', 0.5, 3600, 0.5), text('pattern', false, '\\d{6}'), number('retries', 0, 9, 1), prompt('invalid_prompt')],
  hours: [{ k: 'hours', kind: 'hours', req: true }, node('open'), node('closed'), node('holiday', false)],
  queue: [{ k: 'queue', kind: 'queue', req: true }, number('priority', 0, 100, 1, true), prompt('greeting'), number('announce_every', 10, 600, 5, true), { k: 'announce', kind: 'announce' }, number('first_announcement', 0, 600, 5), { k: 'callback_key', kind: 'key' }, prompt('callback_prompt'), prompt('callback_confirm')],
  transfer: [{ k: 'agent', kind: 'agent' }, text('extension'), text('number', false, '+8610...'), { k: 'queue', kind: 'queue' }, prompt('prompt'), node('on_failure')],
  voicemail: [prompt('prompt', true), { k: 'mailbox', kind: 'mailbox', req: true }, number('max_seconds', 5, 600, 5), prompt('done_prompt')],
  branch: [{ k: 'rules', kind: 'rules', req: true }, node('default')],
  set: [{ k: 'values', kind: 'values', req: true }, node('next')],
  lookup: [text('url', true, 'https://crm.example.com/caller'), number('timeout', 0.1, 10, 0.5), text('into', false, 'customer', true), node('next'), node('on_failure')],
  hangup: [prompt('prompt')],
}

export const KEYS = ['1', '2', '3', '4', '5', '6', '7', '8', '9', '0', '*', '#']
export const TESTS = ['equals', 'one_of', 'matches', 'in_list', 'present']
export const NODE_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/

// What a new node of each type starts with (the schema's defaults, shown to be changed).
const DEFAULTS = {
  menu: { options: [{ key: '1', target: '' }], timeout: 5, retries: 2 },
  collect: { min_digits: 1, max_digits: 20, terminator: '#', timeout: 5, digit_timeout: 3, retries: 2 },
  queue: { announce_every: 30, announce: ['position', 'wait'], first_announcement: 0 },
  voicemail: { max_seconds: 120 },
  branch: { rules: [{ variable: 'caller', test: 'equals', value: '', next: '' }] },
  set: { values: [{ name: 'language', value: 'zh' }] },
  lookup: { timeout: 2, into: 'customer' },
}

export function newNode(id, type) {
  return { id, type, data: structuredClone(DEFAULTS[type] || {}) }
}

// Where a node leads, for its summary and for renaming.
export function exits(n) {
  const d = n.data
  const out = []
  for (const f of TYPES[n.type]) {
    if (f.kind === 'node' && d[f.k]) out.push(d[f.k])
    if (f.kind === 'options') out.push(...d.options.map((o) => o.target).filter(Boolean))
    if (f.kind === 'rules') out.push(...d.rules.map((r) => r.next).filter(Boolean))
  }
  return [...new Set(out)]
}

// Where a node hands the call outside the flow (a queue, mailbox, agent or number).
export function destination(n) {
  const d = n.data
  return d.queue || d.mailbox || d.agent || d.extension || d.number || ''
}

export function renameTargets(nodes, from, to) {
  for (const n of nodes) {
    for (const f of TYPES[n.type]) {
      if (f.kind === 'node' && n.data[f.k] === from) n.data[f.k] = to
      if (f.kind === 'options') n.data.options.forEach((o) => { if (o.target === from) o.target = to })
      if (f.kind === 'rules') n.data.rules.forEach((r) => { if (r.next === from) r.next = to })
    }
  }
}

function ruleIn(rule) {
  const test = TESTS.find((k) => rule[k] !== null && rule[k] !== undefined) || 'equals'
  const value = rule[test]
  return { variable: rule.variable, test, value: Array.isArray(value) ? value.join(', ') : value ?? '', next: rule.next }
}

function ruleOut(rule) {
  const out = { variable: rule.variable, next: rule.next }
  const v = rule.value
  if (rule.test === 'one_of') out.one_of = String(v).split(',').map((s) => s.trim()).filter(Boolean)
  else if (rule.test === 'present') out.present = v === true || v === 'true'
  else out[rule.test] = v
  return out
}

export function fromDefinition(def) {
  const nodes = Object.entries(def.nodes || {}).map(([id, raw]) => {
    const { type, ...rest } = raw
    const data = { ...rest }
    if (type === 'menu') data.options = Object.entries(rest.options || {}).map(([key, target]) => ({ key, target }))
    if (type === 'set') data.values = Object.entries(rest.values || {}).map(([name, value]) => ({ name, value }))
    if (type === 'branch') data.rules = (rest.rules || []).map(ruleIn)
    return { id, type, data }
  })
  const lists = Object.entries(def.lists || {}).map(([name, numbers]) => ({ name, numbers: numbers.join('\n') }))
  return { start: def.start || '', nodes, lists, max_steps: def.max_steps ?? 200 }
}

function nodeOut(n) {
  const out = { type: n.type }
  for (const f of TYPES[n.type]) {
    const v = n.data[f.k]
    if (f.kind === 'options') out.options = Object.fromEntries(v.filter((o) => o.key).map((o) => [o.key, o.target]))
    else if (f.kind === 'values') out.values = Object.fromEntries(v.filter((x) => x.name).map((x) => [x.name, x.value]))
    else if (f.kind === 'rules') out.rules = v.map(ruleOut)
    else if (v === '' || v === null || v === undefined) {
      // Left empty: a required field stays out (the server names it as missing).
      if (!f.req && !f.omit) out[f.k] = null
    } else out[f.k] = v
  }
  return out
}

export function toDefinition(model) {
  return {
    start: model.start,
    nodes: Object.fromEntries(model.nodes.map((n) => [n.id, nodeOut(n)])),
    lists: Object.fromEntries(model.lists.filter((l) => l.name).map((l) => [l.name, l.numbers.split(/[\s,]+/).filter(Boolean)])),
    max_steps: model.max_steps ?? 200,
  }
}

// The server's errors ({field, node, message}) by node, with the field within the node
// ("options.3"); those about the flow as a whole under "".
export function errorsByNode(err) {
  const out = {}
  for (const e of err.body?.errors || []) {
    const prefix = e.node && e.node !== 'flow' ? `body.definition.nodes.${e.node}` : null
    const key = prefix ? e.node : ''
    let field = e.field || ''
    if (prefix && field.startsWith(prefix)) field = field.slice(prefix.length + 1)
    else field = field.replace(/^body\.(definition\.)?/, '')
    ;(out[key] ||= []).push({ field, message: e.message })
  }
  if (!Object.keys(out).length) out[''] = [{ field: '', message: err.message }]
  return out
}
