import { createI18n } from 'vue-i18n'

// Each screen's strings live in locales/<lang>/<area>.json; an area owns its top-level keys
// (tests/test_web_i18n.py checks both languages have the same keys, none defined twice).
const files = import.meta.glob('./locales/*/*.json', { eager: true, import: 'default' })
const messages = { zh: {}, en: {} }
for (const [path, tree] of Object.entries(files)) {
  Object.assign(messages[path.split('/')[2]], tree)
}

// The browser's language by default (中文 for any zh-*), the user's choice once made.
function initial() {
  const saved = localStorage.getItem('hotline.lang')
  if (saved === 'zh' || saved === 'en') return saved
  return (navigator.language || 'zh').toLowerCase().startsWith('zh') ? 'zh' : 'en'
}

export const i18n = createI18n({
  legacy: false,
  locale: initial(),
  fallbackLocale: 'en',
  messages,
  missingWarn: true,
})

export function setLanguage(lang) {
  i18n.global.locale.value = lang
  localStorage.setItem('hotline.lang', lang)
  document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en'
}

// A configured item's name (labels: {zh, en}) in the current language, else its code.
const LABEL_KEYS = { zh: ['zh', 'zh-CN', 'zh-Hans', 'en'], en: ['en', 'en-US', 'zh', 'zh-CN'] }

export function label(item) {
  const labels = item?.labels || {}
  for (const key of LABEL_KEYS[i18n.global.locale.value] || ['en']) {
    if (labels[key]) return labels[key]
  }
  return item?.code || ''
}
