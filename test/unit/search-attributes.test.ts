import assert from 'node:assert/strict';
import { loadConfig } from '../../config/load.js';
import { searchAttributes } from '../../shared/search-attributes.js';

const yamlTypeOf: Record<string, string> = {
  KEYWORD: 'Keyword', TEXT: 'Text', INT: 'Int', DOUBLE: 'Double', BOOL: 'Bool', DATETIME: 'Datetime', KEYWORD_LIST: 'KeywordList',
};

describe('search attributes', () => {
  it('are registered in temporal-dev.yaml exactly as the workflows define them', () => {
    const registered = loadConfig({}).devStack.temporal.searchAttributes;
    const defined = Object.fromEntries(Object.values(searchAttributes).map((key) => [key.name, yamlTypeOf[key.type]]));
    assert.deepEqual(registered, defined);
  });
});
