import { createRouter, createWebHashHistory } from 'vue-router'
import { session } from './api.js'
import Login from './views/Login.vue'
import AgentDesktop from './views/AgentDesktop.vue'
import Wallboard from './views/Wallboard.vue'
import Forbidden from './views/Forbidden.vue'

const ALL = ['admin', 'supervisor', 'agent', 'qa', 'planner']

// Each screen says who may open it; the server checks every request anyway.
export const routes = [
  { path: '/login', component: Login, meta: { public: true } },
  { path: '/agent', component: AgentDesktop, meta: { roles: ['agent'] } },
  { path: '/wallboard', component: Wallboard, meta: { roles: ALL, bare: true } },
  { path: '/forbidden', component: Forbidden, meta: { roles: ALL } },
  { path: '/', redirect: () => home(session()) },
  { path: '/:rest(.*)', redirect: '/' },
]

export function home(me) {
  if (!me) return '/login'
  return me.role === 'agent' ? '/agent' : '/wallboard'
}

export const router = createRouter({ history: createWebHashHistory(), routes })

router.beforeEach((to) => {
  if (to.meta.public) return true
  const me = session()
  if (!me) return { path: '/login', query: { next: to.fullPath } }
  if (to.meta.roles && !to.meta.roles.includes(me.role)) return '/forbidden'
  return true
})
