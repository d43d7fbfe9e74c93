import { reactive } from 'vue'
import { ElMessage, ElMessageBox } from 'element-plus'
import { i18n } from '../../../i18n.js'

// What the telephony screens share: the server's field errors next to the form's fields,
// delete confirmations, and dates in the reader's language.
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
  return { errors, run, clear }
}

export async function confirmDelete(name) {
  try {
    await ElMessageBox.confirm(t('telephony.confirm_delete', { name }), t('telephony.delete'), {
      type: 'warning',
      confirmButtonText: t('telephony.delete'),
      cancelButtonText: t('common.cancel'),
      confirmButtonClass: 'el-button--danger',
    })
    return true
  } catch {
    return false
  }
}

export function when(seconds) {
  if (!seconds) return '—'
  return new Date(seconds * 1000).toLocaleString(i18n.global.locale.value === 'zh' ? 'zh-CN' : 'en-GB')
}

// Labels as the API keeps them ({"zh-CN": ..., "en": ...}), without empty ones.
export function cleanLabels(labels) {
  return Object.fromEntries(Object.entries(labels || {}).filter(([, v]) => v && v.trim()).map(([k, v]) => [k, v.trim()]))
}
