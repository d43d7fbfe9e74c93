import { onMounted, reactive, ref, watch } from 'vue'
import { ElMessage, ElMessageBox } from 'element-plus'
import { api } from '../../api.js'
import { i18n } from '../../i18n.js'

const t = (...args) => i18n.global.t(...args)

// A form's server errors, each under the form item it belongs to. `items` are the form's
// item names as the server's field paths without "body." ('code', 'labels.en', 'skills');
// an error on a deeper path ('skills.sales', 'weekly.mon.0.1') goes to the closest item,
// one no item shows (e.g. a rule across fields) to the form's top. `items` may be a function
// for forms whose items come and go (list rows). `key`: the item naming the record, under
// which a conflict with an existing one is shown. Given the `form`, an item's error goes once
// the person changes its value (when the form names it as the server does).
export function useServerErrors(items, key = 'code', form = null) {
  const errors = reactive({})
  const general = ref('')
  let shown = {}
  const valueAt = (path) => JSON.stringify(path.split('.').reduce((v, k) => v?.[k], form))
  if (form) {
    watch(form, () => {
      for (const item of Object.keys(errors)) if (valueAt(item) !== shown[item]) delete errors[item]
    }, { deep: true })
  }

  function clear() {
    for (const key of Object.keys(errors)) delete errors[key]
    general.value = ''
  }

  function show(err) {
    clear()
    const fields = Object.entries(err.fields || {})
    if (err.status === 409 && /already exists/.test(err.message)) {
      errors[key] = t('admin.errors.exists')
      if (form) shown = { [key]: valueAt(key) }
      return
    }
    if (!fields.length) {
      general.value = err.message
      return
    }
    const byLength = [...(typeof items === 'function' ? items() : items)].sort((a, b) => b.length - a.length)
    const rest = []
    for (const [path, message] of fields) {
      const field = path.replace(/^body\.?/, '')
      const item = byLength.find((f) => field === f || field.startsWith(`${f}.`))
      const text = humane(message)
      if (item) errors[item] = errors[item] ? `${errors[item]}; ${text}` : text
      else rest.push(field ? `${field}: ${text}` : text)
    }
    general.value = rest.join('; ')
    if (form) shown = Object.fromEntries(Object.keys(errors).map((item) => [item, valueAt(item)]))
  }

  return { errors, general, clear, show }
}

// The validation messages people meet most, in their language; others as the server said.
const MESSAGES = [
  [/^String should match pattern/, 'pattern'],
  [/^String should have at least (\d+) char/, 'min_length'],
  [/^String should have at most (\d+) char/, 'max_length'],
  [/^Input should be greater than or equal to (\S+)/, 'ge'],
  [/^Input should be less than or equal to (\S+)/, 'le'],
  [/^Input should be greater than (\S+)/, 'gt'],
  [/not a duration|duration must be/, 'duration'],
  [/^Input should be a valid (date|integer|number)/, 'invalid'],
  [/^Field required/, 'required'],
  [/unknown time zone/, 'timezone'],
]

function humane(message) {
  for (const [pattern, key] of MESSAGES) {
    const m = message.match(pattern)
    if (m) return t(`admin.errors.${key}`, { n: m[1] })
  }
  return message.replace(/^Value error, /, '')
}

// Asks before deleting; true once confirmed. `message` is the question (the telephony
// screens ask in their own words).
export async function confirmDelete(what, message = t('admin.confirm_delete', { what })) {
  try {
    await ElMessageBox.confirm(message, t('admin.delete'), {
      type: 'warning',
      confirmButtonText: t('admin.delete'),
      cancelButtonText: t('common.cancel'),
      confirmButtonClass: 'el-button--danger',
    })
    return true
  } catch {
    return false
  }
}

// Runs a list action (load, delete); a failure is shown as a message.
async function attempt(fn) {
  try {
    return await fn()
  } catch (err) {
    ElMessage.error(err.message)
    return null
  }
}

// Rows from the server, loaded when the screen opens and again by `load()`; a failure is
// shown as a message.
export function useList(fetch) {
  const rows = ref([])
  const loading = ref(false)

  async function load() {
    loading.value = true
    await attempt(async () => { rows.value = await fetch() })
    loading.value = false
  }

  onMounted(load)
  return { rows, loading, load }
}

// A list of records with a dialog to create and edit them: `rows` from `path` (or from
// `fetch`, which may also load what the form offers). `open(row)` (null: a new one) fills
// the form with `fill(row)`; `save()` sends `body(editing)` (POST to `path`, or `update` to
// the record's own path) and is true once saved, the server's errors shown by `errs`
// (useServerErrors); `remove(row)` asks about `what(row)` first. `key` is the field naming
// a record.
export function useCrud({ path, key = 'code', errs, fill, body, update = 'PUT', fetch = () => api('GET', path), what = (row) => row[key] }) {
  const { rows, loading, load } = useList(fetch)
  const dialog = reactive({ open: false, editing: null, saving: false })
  const at = (id) => `${path}/${encodeURIComponent(id)}`

  function open(row) {
    errs.clear()
    dialog.editing = row?.[key] ?? null
    fill(row)
    dialog.open = true
  }

  async function save() {
    dialog.saving = true
    try {
      const editing = dialog.editing
      if (editing) await api(update, at(editing), body(editing))
      else await api('POST', path, body(editing))
      dialog.open = false
      ElMessage.success(t('admin.saved'))
      await load()
      return true
    } catch (err) {
      errs.show(err)
      return false
    } finally {
      dialog.saving = false
    }
  }

  async function remove(row) {
    if (!(await confirmDelete(what(row)))) return
    await attempt(async () => {
      await api('DELETE', at(row[key]))
      ElMessage.success(t('admin.deleted'))
    })
    await load()
  }

  return { rows, loading, dialog, load, open, save, remove }
}

// Durations as people write them ("20s", "3m", "1h30m"); the server takes these as they are.
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || seconds === '') return ''
  let s = Math.round(Number(seconds))
  if (!s) return '0s'
  let out = ''
  for (const [unit, size] of [['h', 3600], ['m', 60], ['s', 1]]) {
    if (s >= size) {
      out += `${Math.floor(s / size)}${unit}`
      s %= size
    }
  }
  return out
}

// A duration field's text for the server: blank means none (null).
export function durationOrNull(text) {
  const s = String(text ?? '').trim()
  return s === '' ? null : s
}

// The IANA time zones the browser knows, for time zone pickers.
export function timeZones(current) {
  const zones = typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : []
  const all = new Set(['Asia/Shanghai', 'UTC', ...zones])
  if (current) all.add(current)
  return [...all].sort()
}

// Labels {zh-CN, en} as the server stores them, without empty ones.
export function cleanLabels(labels) {
  return Object.fromEntries(Object.entries(labels || {}).filter(([, v]) => v && v.trim()).map(([k, v]) => [k, v.trim()]))
}

export const LEVELS = { min: 1, max: 10 }
