import { createApp } from 'vue'
import ElementPlus from 'element-plus'
import 'element-plus/dist/index.css'
import App from './App.vue'
import { router } from './router.js'
import { i18n, setLanguage } from './i18n.js'

setLanguage(i18n.global.locale.value)
createApp(App).use(i18n).use(router).use(ElementPlus).mount('#app')
