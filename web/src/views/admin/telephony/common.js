import { reactive } from 'vue'
import { ElMessage } from 'element-plus'
import { i18n } from '../../../i18n.js'
import { confirmDelete as askDelete } from '../admin.js'

// What the telephony screens share: the server's field errors next to the form's fields,
// delete confirmations in their words, and dates in the reader's language.
const t = (...args) => i18n.global.t(...args)

// `errors.<field>` for each field the server named ("body.password" -> "password"); what
// belongs to no field of the form (or has no field) goes to `errors.form`.
export function useErrors(known) {
  const errors = reactive({})
  function clear() {
    for (const key of Object.keys(errors)) delete errors[key]
  }
  // Runs an API call; true when it succeeded.
  async function run(fn) {
    clear()
    try {
      await fn()
      return true
    } catch (err) {
      const rest = []
      for (const [field, message] of Object.entries(err.fields || {})) {
        const name = field.replace(/^(body|path|query)\./, '').split('.')[0]
        if (known.includes(name)) errors[name] = errors[name] ? `${errors[name]}; ${message}` : message
        else rest.push(message)
      }
      if (rest.length || !Object.keys(err.fields || {}).length) {
        errors.form = rest.length ? rest.join('; ') : err.message
        ElMessage.error(errors.form)
      }
      return false
    }
  }
  // Sends a dialog's form with `send`, the dialog busy meanwhile; once sent, it closes and
  // `message` says so. True when sent.
  async function submit(dialog, send, message = t('telephony.saved')) {
    dialog.busy = true
    const ok = await run(send)
    dialog.busy = false
    if (ok) {
      dialog.open = false
      ElMessage.success(message)
    }
    return ok
  }
  return { errors, run, clear, submit }
}

export const confirmDelete = (name) => askDelete(name, t('telephony.confirm_delete', { name }))

export function when(seconds) {
  if (!seconds) return '—'
  return new Date(seconds * 1000).toLocaleString(i18n.global.locale.value === 'zh' ? 'zh-CN' : 'en-GB')
}
