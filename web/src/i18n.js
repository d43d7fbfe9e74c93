import { createI18n } from 'vue-i18n'
import en from './locales/en.json'
import zh from './locales/zh.json'

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
  messages: { zh, en },
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
