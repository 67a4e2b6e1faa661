export * from './platform';
export * from './reference';
export * from './digest';
export * from './image-index';
export * from './build-status';
export * from './tag-template';
export * from './ref-filter';
