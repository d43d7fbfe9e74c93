import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'

// Built into the Python package, which serves it at / (see hotline/web/__init__.py).
export default defineConfig({
  plugins: [vue()],
  build: {
    outDir: '../src/hotline/web/static',
    emptyOutDir: true,
    chunkSizeWarningLimit: 2000,
  },
  server: { proxy: { '/api': { target: 'http://127.0.0.1:8000', ws: true } } },
})
