export { FORGES, isForge, type Forge, type WebhookHeaders } from './forge';
export { deliveryInfo, verifyWebhookSignature, type DeliveryInfo } from './signature';
export { parsePushEvent, WebhookPayloadError, type PushIntent } from './push-event';
