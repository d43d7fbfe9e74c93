// The planning page's shared pieces: the plan kept in the page (each step's result feeds the
// next; a new result clears the steps after it, which were made from the old one), CSV text
// for the next step and for downloads, and times shown as the server wrote them.
import { reactive } from 'vue'

export const STEPS = ['forecast', 'staff', 'schedule', 'roster', 'simulate', 'publish']

export function newPlan() {
  const plan = reactive({
    forecast: null, // POST /wfm/forecast's answer
    forecastCsv: '', // interval_start, calls[, aht]: what staffing and simulation read
    staff: null, // POST /wfm/staff's answer
    staffInputs: null, // the service goal it was sized for (the simulation's too)
    requirementCsv: '',
    schedule: null, // POST /wfm/schedule's answer
    roster: null, // POST /wfm/assign's answer
    simulation: null,
    published: null,
  })
  // a step's new result: the later steps were made from the old one
  plan.set = (step, values) => {
    Object.assign(plan, values)
    const later = STEPS.slice(STEPS.indexOf(step) + 1)
    const fields = {
      staff: ['staff', 'staffInputs', 'requirementCsv'],
      schedule: ['schedule'],
      roster: ['roster'],
      simulate: ['simulation'],
      publish: ['published'],
    }
    for (const s of later) for (const f of fields[s] || []) plan[f] = null
  }
  return plan
}

const cell = (v) => {
  const s = v == null ? '' : String(v)
  return /[",\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s
}

export function toCsv(rows, columns) {
  return [columns.join(','), ...rows.map((r) => columns.map((c) => cell(r[c])).join(','))].join('\n') + '\n'
}

export function saveCsv(text, name) {
  const url = URL.createObjectURL(new Blob([text], { type: 'text/csv;charset=utf-8' }))
  const a = Object.assign(document.createElement('a'), { href: url, download: name })
  document.body.append(a)
  a.click()
  a.remove()
  setTimeout(() => URL.revokeObjectURL(url), 10000)
}

// ISO 8601 local times as the server wrote them (with or without an offset): shown as
// written, not moved to the browser's zone.
export const dayOf = (iso) => iso.slice(0, 10)
export const clock = (iso) => iso.slice(11, 16)
export const slot = (iso) => `${iso.slice(5, 10)} ${iso.slice(11, 16)}`
export const WEEKDAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat']
export function weekday(isoDay) {
  const [y, m, d] = isoDay.split('-').map(Number)
  return WEEKDAYS[new Date(y, m - 1, d).getDay()]
}
export function nextDay(isoDay) {
  const [y, m, d] = isoDay.split('-').map(Number)
  const t = new Date(Date.UTC(y, m - 1, d + 1))
  return t.toISOString().slice(0, 10)
}

// Numbers as the tables show them (the browser tests compare with the API's figures).
export const num = (x, digits = 1) => (x == null ? '—' : Number(x).toFixed(digits))
export const pct = (x) => (x == null ? '—' : `${(x * 100).toFixed(1)}%`)

// Each named agent's (or line's) shifts: activities that follow each other without a gap,
// on the day the shift starts.
export function shiftsOf(activities) {
  const out = {}
  for (const a of [...activities].sort((x, y) => (x.agent === y.agent ? (x.start < y.start ? -1 : 1) : x.agent < y.agent ? -1 : 1))) {
    const list = (out[a.agent] ||= [])
    const last = list[list.length - 1]
    if (last && last.end === a.start) last.end = a.end
    else list.push({ start: a.start, end: a.end, day: dayOf(a.start) })
  }
  return out
}

// The server's field errors ({field, message}) as lines to show, or its message.
export function problems(err) {
  const list = err?.body?.errors
  if (list?.length) return list.map((e) => `${e.field}: ${e.message}`)
  return [err?.message || String(err)]
}
