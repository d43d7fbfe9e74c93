import { createRouter, createWebHashHistory } from 'vue-router'
import { session } from './api.js'
import Login from './views/Login.vue'
import AgentDesktop from './views/AgentDesktop.vue'
import Wallboard from './views/Wallboard.vue'
import Monitor from './views/Monitor.vue'
import Forbidden from './views/Forbidden.vue'

const ALL = ['admin', 'supervisor', 'agent', 'qa', 'planner']
const ADMIN = ['admin']

// Administration: one page per thing configured, listed in the side menu in this order.
// `platform` pages are for the platform's administrators (who manage all tenants).
export const adminPages = [
  { path: 'tenants', name: 'tenants', component: () => import('./views/admin/Tenants.vue'), platform: true },
  { path: 'users', name: 'users', component: () => import('./views/admin/Users.vue') },
  { path: 'agents', name: 'agents', component: () => import('./views/admin/Agents.vue') },
  { path: 'skills', name: 'skills', component: () => import('./views/admin/Skills.vue') },
  { path: 'queues', name: 'queues', component: () => import('./views/admin/Queues.vue') },
  { path: 'reasons', name: 'reasons', component: () => import('./views/admin/ReasonCodes.vue') },
  { path: 'dispositions', name: 'dispositions', component: () => import('./views/admin/Dispositions.vue') },
  { path: 'hours', name: 'hours', component: () => import('./views/admin/BusinessHours.vue') },
  { path: 'ivr', name: 'ivr', component: () => import('./views/admin/IvrFlows.vue') },
  { path: 'prompts', name: 'prompts', component: () => import('./views/admin/Prompts.vue') },
  { path: 'trunks', name: 'trunks', component: () => import('./views/admin/Trunks.vue') },
  { path: 'routes', name: 'routes', component: () => import('./views/admin/Routes.vue') },
  { path: 'phones', name: 'phones', component: () => import('./views/admin/Phones.vue') },
]

// Each screen says who may open it; the server checks every request anyway.
export const routes = [
  { path: '/login', component: Login, meta: { public: true } },
  { path: '/agent', component: AgentDesktop, meta: { roles: ['agent'] } },
  { path: '/monitor', component: Monitor, meta: { roles: ['admin', 'supervisor'] } },
  { path: '/wallboard', component: Wallboard, meta: { roles: ALL, bare: true } },
  {
    path: '/reports',
    component: () => import('./views/Reports.vue'),
    meta: { roles: ['admin', 'supervisor', 'qa', 'planner'] },
  },
  {
    path: '/planning',
    component: () => import('./views/Planning.vue'),
    meta: { roles: ['admin', 'planner'] },
  },
  {
    path: '/cdrs',
    component: () => import('./views/Cdrs.vue'),
    meta: { roles: ['admin', 'supervisor', 'qa'] },
  },
  {
    path: '/admin',
    component: () => import('./views/admin/AdminLayout.vue'),
    meta: { roles: ADMIN },
    children: [
      { path: '', redirect: '/admin/users' },
      ...adminPages.map((p) => ({ ...p, meta: { roles: ADMIN, platform: !!p.platform } })),
    ],
  },
  { path: '/forbidden', component: Forbidden, meta: { roles: ALL } },
  { path: '/', redirect: () => home(session()) },
  { path: '/:rest(.*)', redirect: '/' },
]

export function home(me) {
  if (!me) return '/login'
  return { agent: '/agent', supervisor: '/monitor', admin: '/monitor', qa: '/cdrs', planner: '/planning' }[me.role] || '/wallboard'
}

export const router = createRouter({ history: createWebHashHistory(), routes })

router.beforeEach((to) => {
  if (to.meta.public) return true
  const me = session()
  if (!me) return { path: '/login', query: { next: to.fullPath } }
  if (to.meta.roles && !to.meta.roles.includes(me.role)) return '/forbidden'
  if (to.meta.platform && !me.platform) return '/forbidden'
  return true
})
