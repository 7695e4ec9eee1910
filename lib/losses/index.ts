export { clipLoss } from './clip';
export type { ClipLossOptions } from './clip';
