// The sample base images are shared with `npm start`, which seeds the local registry with them.
export * from '../../scripts/lib/base-images';
